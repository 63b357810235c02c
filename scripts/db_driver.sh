# Sourced by run.sh and test.sh after venv.sh: when the settings choose MySQL or MariaDB
# (DATABASE_URL=mysql://…, or DATABASE_ENGINE=mysql), installs its driver, mysqlclient,
# which builds against the client library's headers (Debian: libmariadb-dev). As root
# with apt-get they are installed here; otherwise the script says what to install.
engine=$(.venv/bin/python -c 'import os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
from django.conf import settings
print(settings.DATABASES["default"]["ENGINE"])' 2>/dev/null || true)
if [ "$engine" = django.db.backends.mysql ]; then
  if ! pkg-config --exists mysqlclient 2>/dev/null && ! pkg-config --exists libmariadb 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing libmariadb-dev and pkg-config for the MySQL driver" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmariadb-dev pkg-config >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmariadb-dev pkg-config >/dev/null; }
    else
      echo "The MySQL driver (mysqlclient) is built from source and needs the client" \
        "library's headers and pkg-config: on Debian or Ubuntu" \
        "'sudo apt-get install libmariadb-dev pkg-config', then run this again." >&2
      exit 1
    fi
  fi
  source scripts/venv.sh requirements-mysql.txt
fi
