"""BOT_WORKERS webhook processes on one listening address.

Each worker is a whole `runbot --worker N` process that binds WEBHOOK_LISTEN with
SO_REUSEPORT: the kernel spreads Telegram's connections over them, and no process
passes requests on. This one only starts them, hands SIGTERM and SIGINT on, and waits.
It restarts nothing: when a worker dies on its own, the others are stopped too and the
exit status is 1, so that the process manager (systemd's Restart=on-failure, see
deploy/) starts the whole group again.

The workers count their metrics in prometheus_client's multiprocess mode, so that
`/metrics` sums all of them whichever worker answers: in PROMETHEUS_MULTIPROC_DIR when
it is set (emptied here before the first worker starts), else in a temporary directory
made here and removed when the workers have stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loguru import logger

from backend.common.metrics import MULTIPROC_DIR_VARIABLE, reset_multiprocess_dir

STOP_TIMEOUT = 20.0  # seconds the workers get after SIGTERM before SIGKILL
MANAGE = Path(__file__).resolve().parents[2] / "manage.py"


def run_workers(count: int) -> int:
    """Run `count` workers until a signal or one's death; returns the exit status: 0
    when a signal stopped them and each ended cleanly, 1 otherwise."""
    own_dir = None
    if not os.environ.get(MULTIPROC_DIR_VARIABLE):
        own_dir = tempfile.mkdtemp(prefix="topup-bot-metrics-")
        os.environ[MULTIPROC_DIR_VARIABLE] = own_dir  # the workers inherit it
    reset_multiprocess_dir()
    try:
        return _run(count)
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
            os.environ.pop(MULTIPROC_DIR_VARIABLE, None)


def _run(count: int) -> int:
    workers = [
        subprocess.Popen([sys.executable, str(MANAGE), "runbot", "--worker", str(n)])
        for n in range(1, count + 1)
    ]
    logger.info("{} webhook workers started: pids {}", count, [w.pid for w in workers])
    signalled = False

    def terminate() -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal signalled
        signalled = True
        logger.info("{} received: stopping the workers", signal.Signals(signum).name)
        terminate()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while all(w.poll() is None for w in workers) and not signalled:
            time.sleep(0.2)
        if not signalled:
            dead = next(w for w in workers if w.poll() is not None)
            logger.error(
                "webhook worker {} exited with {}: stopping the others", dead.pid, dead.returncode
            )
            terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in workers:
            try:
                worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.error("webhook worker {} did not stop: killed", worker.pid)
                worker.kill()
                worker.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if signalled and all(w.returncode == 0 for w in workers) else 1
