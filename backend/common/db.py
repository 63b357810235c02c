from collections.abc import Callable
from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections


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
