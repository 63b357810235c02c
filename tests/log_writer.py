"""A process that logs as one of the project's would, for tests/test_log_files.py.

    python tests/log_writer.py COUNT TAG [--fork-worker N] -- ARGV...

ARGV is what the process's command line would be (`runbot.py`, `manage.py runserver`,
`manage.py migrate`): the project's settings choose the log file from it, as in the real
process. The process prints the name of its file, waits for a line on stdin (so that
the test starts every writer at once), then logs COUNT records tagged TAG through loguru
and the standard logging, and prints "done". With --fork-worker N it forks first: the
child calls `use_worker_log(N)` and logs as TAG-wN, the parent as TAG, at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write(count: int, tag: str) -> None:
    import logging

    from loguru import logger

    for i in range(count):
        if i % 2:
            logging.getLogger("django.request").warning("%s line %05d %s", tag, i, "." * 60)
        else:
            logger.info("{} line {:05d} {}", tag, i, "x" * 60)
    logger.complete()


def main() -> None:
    args = sys.argv[1:]
    split = args.index("--")
    options, argv = args[:split], args[split + 1 :]
    count, tag = int(options[0]), options[1]
    worker = int(options[3]) if len(options) > 3 and options[2] == "--fork-worker" else None

    sys.path.insert(0, str(ROOT))
    sys.argv = argv
    os.environ["DJANGO_SETTINGS_MODULE"] = "backend.settings"
    import django

    django.setup()
    from backend import log_setup

    print(log_setup.current_log_file(), flush=True)
    sys.stdin.readline()
    if worker is None:
        write(count, tag)
        print("done", flush=True)
        return

    child = os.fork()
    if child == 0:
        name = log_setup.use_worker_log(worker)
        write(count, f"{tag}-w{worker}")
        print(f"worker {name}", flush=True)
        os._exit(0)
    write(count, tag)
    _, status = os.waitpid(child, 0)
    # The parent still holds its own name: the worker closed its copy, never unlocked it.
    import fcntl

    lock_path = Path(os.environ["LOG_DIR"]) / ".locks" / f"{log_setup.current_log_file()}.lock"
    with lock_path.open("a") as other:
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = "released"
        except OSError:
            held = "held"
    print(f"parent {held} {os.waitstatus_to_exitcode(status)}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
