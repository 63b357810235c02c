from collections.abc import Callable
from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError, close_old_connections, connections


def db_async(func: Callable[..., Any]) -> Callable[..., Any]:
    """`sync_to_async` for database work outside a request cycle.

    Django drops broken or too old connections around each request; the bot and the
    poller have no requests, so this does the same around each call.
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(wrapper, thread_sensitive=True)


def db_async_idempotent(func: Callable[..., Any]) -> Callable[..., Any]:
    """`db_async` for work that may safely run twice: a read, or one statement whose
    repetition changes nothing more.

    It skips the health check (a `SELECT 1` before the first query of each call, with
    `CONN_HEALTH_CHECKS`), which on the bot's busiest path would double the round trips;
    instead, a call that fails on a connection that turns out broken runs once more, on
    a new connection.
    """

    def run(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        for connection in connections.all(initialized_only=True):
            connection.health_check_done = True  # the retry below stands in for it
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return run(*args, **kwargs)
        except DatabaseError:
            if all(c.connection is not None for c in connections.all(initialized_only=True)):
                raise  # the connection survived: the error is not about it
            return run(*args, **kwargs)

    return sync_to_async(wrapper, thread_sensitive=True)
