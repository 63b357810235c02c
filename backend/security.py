"""The admin's own hardening: a Content-Security-Policy header, an idle timeout for
logged-in sessions, a log line for every failed login and every lockout, the client's
address behind a proxy, and the page of a locked-out login (django-axes).

Django 5.2 has no CSP of its own. `SECURE_CSP` in settings has the shape of Django 6.0's
setting of that name (directive → sources), so moving to 6.0 means swapping
`ContentSecurityPolicyMiddleware` below for `django.middleware.csp`'s.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, logout
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext
from loguru import logger

CSP_HEADER = "Content-Security-Policy"
# Unix time of the session's last request, rounded to the second; written again only
# once it is ACTIVITY_WRITE_SECONDS old, so a busy admin saves the session once a minute.
LAST_ACTIVITY_KEY = "admin_last_activity"
ACTIVITY_WRITE_SECONDS = 60


def csp_header_value(policy: dict[str, list[str]]) -> str:
    """`{"default-src": ["'self'"], ...}` → `default-src 'self'; ...`."""
    return "; ".join(
        " ".join([directive, *sources]) for directive, sources in policy.items() if directive
    )


class ContentSecurityPolicyMiddleware:
    """Sends `settings.SECURE_CSP` as the Content-Security-Policy of every response
    (a response that already has one keeps it). An empty policy sends nothing."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        value = csp_header_value(getattr(settings, "SECURE_CSP", {}) or {})
        if value and CSP_HEADER not in response.headers:
            response.headers[CSP_HEADER] = value
        return response


class IdleSessionTimeoutMiddleware:
    """Logs out a session that made no request for ADMIN_SESSION_IDLE_MINUTES.

    The time of the last request is kept in the session and rewritten at most once a
    minute (ACTIVITY_WRITE_SECONDS, or a tenth of the timeout when that is shorter), so
    the timeout is exact to that much. The first write also fixes the session's expiry
    at SESSION_COOKIE_AGE from then: Django would otherwise move it on every save, and
    the absolute lifetime would slide along with the activity. 0 turns the timeout off.
    Must come after the authentication and message middleware.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        idle_seconds = settings.ADMIN_SESSION_IDLE_MINUTES * 60
        if idle_seconds > 0 and request.user.is_authenticated:
            self._check(request, idle_seconds)
        response = self.get_response(request)
        if idle_seconds > 0 and request.user.is_authenticated:  # the login itself too
            last = request.session.get(LAST_ACTIVITY_KEY)
            if not isinstance(last, int):
                self._start(request.session, int(time.time()))
        return response

    def _start(self, session, now: int) -> None:
        if "_session_expiry" not in session and not session.get_expire_at_browser_close():
            session.set_expiry(datetime.fromtimestamp(now + settings.SESSION_COOKIE_AGE, tz=UTC))
        session[LAST_ACTIVITY_KEY] = now

    def _check(self, request: HttpRequest, idle_seconds: int) -> None:
        session = request.session
        now = int(time.time())
        last = session.get(LAST_ACTIVITY_KEY)
        if not isinstance(last, int):
            self._start(session, now)
        elif now - last > idle_seconds:
            username = request.user.get_username()
            logout(request)  # the session is emptied; the admin sends the request to login
            logger.info(
                "admin session of {!r} ended after {} idle minutes",
                username,
                (now - last) // 60,
            )
            note = gettext(
                "Your session ended after %(minutes)d minutes without activity. "
                "Please log in again."
            ) % {"minutes": settings.ADMIN_SESSION_IDLE_MINUTES}
            messages.warning(request, note, fail_silently=True)  # shown on the login page
        elif not 0 <= now - last < min(ACTIVITY_WRITE_SECONDS, idle_seconds // 10):
            session[LAST_ACTIVITY_KEY] = now  # (also when the clock went back)


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or behind a proxy the header the proxy sets,
    ADMIN_CLIENT_IP_HEADER (see `address_behind_proxy`). django-axes counts failed
    logins per this address (AXES_CLIENT_IP_CALLABLE)."""
    return address_behind_proxy(remote=request.META.get("REMOTE_ADDR"), headers=request.headers)


def address_behind_proxy(*, remote: str | None, headers: Mapping[str, str]) -> str | None:
    """The client's address, for the admin server and the bot's own listener alike:
    `remote` (the peer's), or behind a proxy the header the proxy sets,
    ADMIN_CLIENT_IP_HEADER (e.g. `X-Real-IP`, or `X-Forwarded-For`, of which the last
    value is taken: the one the proxy appended; what a client sent itself is before it).
    Only that header is believed, and only when it is configured: with the setting
    empty an `X-Forwarded-For` is ignored. A request without the header (not through
    the proxy) or with a value that is not an address falls back to `remote`.
    `headers`: case-insensitive (Django's `request.headers`, aiohttp's)."""
    remote = remote or None
    header = settings.ADMIN_CLIENT_IP_HEADER
    if not header:
        return remote
    value = headers.get(header, "").rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return remote


def log_failed_login(sender, credentials: dict, request: HttpRequest | None = None, **kwargs):
    """`user_login_failed`: the username tried and the client's address (`client_ip`),
    never the password; a `reason` sent with the signal (a wrong TOTP code) is added."""
    username = credentials.get(get_user_model().USERNAME_FIELD, credentials.get("username"))
    address = client_ip(request) if request is not None else None
    path = request.path if request is not None else None
    reason = kwargs.get("reason")
    logger.warning(
        "failed login: username {!r} from {} ({}){}",
        "" if username is None else str(username),
        address or "an unknown address",
        path or "no request",
        f": {reason}" if reason else "",
    )


def log_lockout(sender, request: HttpRequest, username, ip_address, **kwargs) -> None:
    """django-axes' `user_locked_out`: a WARNING with the username and the address. It
    comes when the failures reach ADMIN_LOCKOUT_FAILURES (the lockout itself) and again
    for every login tried while locked out (refused)."""
    failures = getattr(request, "axes_failures_since_start", None)
    minutes = settings.ADMIN_LOCKOUT_MINUTES
    until = f"for {minutes} minutes" if minutes else "until lifted (manage.py axes_reset…)"
    if failures is not None:
        logger.warning(
            "admin login locked out {} after {} failed logins: username {!r}, address {}",
            until,
            failures,
            "" if username is None else str(username),
            ip_address or "unknown",
        )
    else:
        logger.warning(
            "admin login refused, locked out: username {!r}, address {}",
            "" if username is None else str(username),
            ip_address or "unknown",
        )


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """The page of a locked-out login (AXES_LOCKOUT_CALLABLE): 429, in the admin's look,
    saying for how long."""
    from django.contrib import admin

    context = {
        **admin.site.each_context(request),
        "title": gettext("Login locked"),
        "minutes": settings.ADMIN_LOCKOUT_MINUTES,
        "login_url": reverse("admin:login"),
    }
    response = TemplateResponse(request, "admin/login_locked.html", context, status=429)
    return response.render()
