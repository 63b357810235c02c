#!/usr/bin/env bash
# Sets everything up (venv, dependencies, migrations) and runs the admin site and the bot.
# Settings come from .env (see .env.example); without DATABASE_URL a SQLite file is used.
source "$(dirname "$0")/venv.sh" requirements.txt
PY=.venv/bin/python
$PY manage.py migrate --noinput
ADMIN_ADDR=${ADMIN_ADDR:-127.0.0.1:8000}
# --insecure: runserver serves the admin's CSS and JS although DEBUG is off.
$PY manage.py runserver --insecure --noreload "$ADMIN_ADDR" &
admin_pid=$!
trap 'kill "$admin_pid" 2>/dev/null; wait "$admin_pid" 2>/dev/null' EXIT
echo "Admin site: http://$ADMIN_ADDR/admin/  (create a login: .venv/bin/python manage.py createsuperuser)"
$PY runbot.py
