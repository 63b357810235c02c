#!/usr/bin/env bash
# Sets up the venv with the test tools, checks lint and format, and runs the test suite.
# The database is the one the settings choose: DATABASE_URL (PostgreSQL or MySQL/MariaDB)
# or SQLite.
source "$(dirname "$0")/venv.sh" requirements-dev.txt
source scripts/db_driver.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
