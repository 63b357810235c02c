"""Database work from async code: `db_async` wraps a synchronous service for the bot
and the bill jobs.

The services and selectors that async code calls have their twin beside them, made
here and named with an `a` in front, as Django names its own (`save` → `asave`):
`abill_create = db_async(bill_create)`.

The dialog's database work runs on one thread (asgiref's, `thread_sensitive`), with one
connection. Background jobs that issue many statements of their own (a broadcast's
claims and outcomes) run theirs on another (`jobs=True`: the `JOBS` thread, with its
own connection), so a user waiting for a reply never queues behind them; the services
are transactional, so the two threads are no different from two processes.
"""

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import DatabaseError, close_old_connections, connections

JOBS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-jobs")

P = ParamSpec("P")
R = TypeVar("R")


def db_async(
    func: Callable[P, R], *, idempotent: bool = False, jobs: bool = False
) -> Callable[P, Coroutine[Any, Any, R]]:
    """`sync_to_async` for database work outside a request cycle: the same signature
    (keyword-only arguments stay keyword-only for a type checker), awaited.

    Django drops broken or too old connections around each request; the bot and the
    bill jobs have no requests, so this does the same around each call.

    `idempotent`: for work that may safely run twice (a read, or one statement whose
    repetition changes nothing more). It skips the health check (a `SELECT 1` before
    the first query of each call, with `CONN_HEALTH_CHECKS`), which on the bot's busiest
    path would double the round trips; instead, a call that fails on a connection that
    turns out broken runs once more, on a new connection.

    `jobs`: on the background jobs' thread (`JOBS`), not the dialog's.
    """

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        close_old_connections()
        if idempotent:
            for connection in connections.all(initialized_only=True):
                connection.health_check_done = True  # the retry below stands in for it
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if not idempotent:
            return run(*args, **kwargs)
        try:
            return run(*args, **kwargs)
        except DatabaseError:
            if all(c.connection is not None for c in connections.all(initialized_only=True)):
                raise  # the connection survived: the error is not about it
            return run(*args, **kwargs)

    if jobs:
        return sync_to_async(wrapper, thread_sensitive=False, executor=JOBS)
    return sync_to_async(wrapper, thread_sensitive=True)


async def db_jobs_close() -> None:
    """Close the jobs thread's connection (when the bot stops)."""
    await asyncio.get_running_loop().run_in_executor(JOBS, connections.close_all)
