#!/usr/bin/env bash
# Sets everything up (venv, dependencies, secret key, migrations) and runs the admin site
# and the bot. Settings come from .env (see .env.example); without DATABASE_URL a SQLite
# file is used.
source "$(dirname "$0")/venv.sh" requirements.txt
PY=.venv/bin/python
# A fresh clone has no BACKEND_SECRET_KEY: make a random one once and keep it in .env.
$PY scripts/ensure_secret_key.py
# The admin is served here over plain HTTP: secure cookies (the default with DEBUG off)
# would never come back and the login would fail. So SECURE_COOKIES=false for this run
# (it also keeps the HTTPS redirect and HSTS off), unless the environment or .env sets it.
if [ -z "${SECURE_COOKIES:-}" ] && ! $PY -c 'import sys; from dotenv import dotenv_values
sys.exit(0 if (dotenv_values(".env").get("SECURE_COOKIES") or "").strip() else 1)'; then
  export SECURE_COOKIES=false
fi
$PY manage.py migrate --noinput
ADMIN_ADDR=${ADMIN_ADDR:-127.0.0.1:8000}
# --insecure: runserver serves the admin's CSS and JS although DEBUG is off.
$PY manage.py runserver --insecure --noreload "$ADMIN_ADDR" &
admin_pid=$!
trap 'kill "$admin_pid" 2>/dev/null; wait "$admin_pid" 2>/dev/null' EXIT
echo "Admin site: http://$ADMIN_ADDR/admin/  (create a login: .venv/bin/python manage.py createsuperuser)"
$PY runbot.py
