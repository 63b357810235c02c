#!/usr/bin/env bash
# Sets everything up (venv, dependencies, secret key, migrations, static files) and runs
# the admin site (gunicorn) and the bot. Settings come from .env (see .env.example);
# without DATABASE_URL a SQLite file is used.
#
# One copy per project at a time. Ctrl-C or SIGTERM stops both servers, exit status 0;
# a configuration error starts nothing, exit status 1; so does a server that stops by
# itself (the other one is stopped first).
set -euo pipefail
cd "$(dirname "$0")/.."
if ((BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] < 403)); then
  echo "run.sh needs bash 4.3 or newer (wait -n), this is $BASH_VERSION" >&2
  exit 1
fi

# One copy at a time: an flock on .run.lock, held through file descriptor 9 by this
# script and everything it starts (python takes it: flock(1) is not everywhere).
exec 9>>.run.lock
lock_status=0
"${PYTHON:-python3}" -c 'import fcntl, sys
try:
    fcntl.flock(9, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    sys.exit(75)' || lock_status=$?
if [ "$lock_status" = 75 ]; then
  pid=$(head -n 1 .run.lock 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "run.sh is already running in $PWD (pid $pid): stop it first." >&2
  else # run.sh was killed, what it started holds the lock
    echo "run.sh: the servers of an earlier run.sh still run in $PWD: stop them first." >&2
  fi
  exit 1
elif [ "$lock_status" != 0 ]; then
  exit 1
fi
echo "$$" >.run.lock

# Ctrl-C, SIGTERM and a closed terminal (SIGHUP) end the run with status 0: a setup step
# under way is let finish first, the servers are stopped. Any other end is a failure:
# status 1 (set -e stops at the first failed step).
stopping= admin_pid= bot_pid=
stop() {
  stopping=1
  # shellcheck disable=SC2086 # unquoted: a server not started yet is no argument
  kill -TERM $admin_pid $bot_pid 2>/dev/null || true
}
trap stop HUP INT TERM
exit_status() {
  local status=$?
  if [ -n "$stopping" ]; then exit 0; elif [ "$status" != 0 ]; then exit 1; fi
}
trap exit_status EXIT
stop_if_asked() { [ -z "$stopping" ] || exit 0; }

# The token and the keys are in .env: readable by its owner only.
if [ -e .env ] && ! chmod 600 .env; then
  echo "run.sh: warning: could not make .env readable by its owner only" >&2
fi
source scripts/venv.sh requirements.txt
source scripts/db_driver.sh
stop_if_asked
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
# The configuration first (settings, system checks, the bot's token and keys): on an
# error nothing is started. Its last line is "ADMIN_ADDR ADMIN_WORKERS".
admin=$($PY scripts/check_config.py)
read -r admin_addr admin_workers <<<"${admin##*$'\n'}"
stop_if_asked
$PY manage.py migrate --noinput
stop_if_asked
$PY manage.py collectstatic --noinput --verbosity 0
stop_if_asked

# Both servers in the background; whichever ends first, or a signal, stops the other.
$PY -m gunicorn -c scripts/gunicorn.conf.py --bind "$admin_addr" --workers "$admin_workers" &
admin_pid=$!
$PY runbot.py &
bot_pid=$!
while [ -z "$stopping" ] && kill -0 "$admin_pid" 2>/dev/null && kill -0 "$bot_pid" 2>/dev/null; do
  wait -n || true # a server ended, or a signal came (and `stop` signalled the servers)
done
status=0
if [ -z "$stopping" ]; then
  if kill -0 "$admin_pid" 2>/dev/null; then ended=$bot_pid name="the bot"; else
    ended=$admin_pid name="the admin server"
  fi
  wait "$ended" || status=$?
  echo "run.sh: $name stopped (exit status $status): stopping everything." >&2
  status=1 # nobody asked it to stop: a failure, whatever its own status (gunicorn: 0 on TERM)
fi
kill -TERM "$admin_pid" "$bot_pid" 2>/dev/null || true
for pid in "$admin_pid" "$bot_pid"; do
  # `wait` returns early when another signal comes: wait again until the process is gone.
  while kill -0 "$pid" 2>/dev/null; do wait "$pid" || true; done
done
exit "$status"
