"""The Prometheus metrics of the bot process and its `GET /metrics` view (prometheus_client):
kept here, not in the bot package, because the bill flows and jobs in payments count too.

What is counted, and where (only metrics that something really updates):

- `topup_updates_total{type}` (message, callback_query, pre_checkout_query, …) and
  `topup_update_errors_total{type}`: `backend.bot.middlewares.UpdateMetrics`, the
  outermost of our middlewares on `dp.update`: every update the dispatcher gets (those
  dropped for a flood or a blocked user too), and those whose middlewares or handlers
  raised (the exception goes on to the error handler).
- `topup_telegram_requests_total{method, status}`: `backend.bot.session.RequestMetrics`,
  each HTTP request to the Bot API (inside TelegramRequestPolicy: a 429 waited out and
  sent again is two requests). `status`: `ok`; the HTTP code `400`, `401`, `403`, `404`,
  `409`, `413`, `429`; `5xx`; `error` (another code); `bad_response` (not Telegram's
  JSON); `network_error` (no answer: connection, timeout).
- `topup_bills_total{provider, event}`: `bill_created` / `bill_failed` where a bill is
  made (`backend.payments.flows.bill_issue`); `bill_transition` where a bill's move is reported: in
  `BillNotifier` (the poller, the Telegram bills' expiry, the Stars reconciliation), the
  check button and the `successful_payment` handler. `event`: `created` (the provider
  took the bill), `failed` (it did not), `paid`, `rejected`, `expired`.
- `topup_credited_rubles_total{provider}`: with each `paid`, the rubles credited. A
  Counter of a float amount is the Prometheus way for a sum that only grows (`rate()`
  gives rubles per second); the ledger stays the exact record, in kopecks.
- `topup_poll_round_seconds{provider}`: a Histogram of the bill poller's rounds
  (`backend.payments.poller.poll_once`: read the bills, ask the provider about each).

Only the bot process counts: a bill credited by the admin's «check now» action is
counted in the admin server's process, which exposes no metrics.

One process (webhook with `BOT_WORKERS=1`): the metrics live in the process's memory
and `/metrics` shows the default registry. In polling mode the process counts the same
way but serves no `/metrics`: backend/bot/runner.py starts no HTTP listener there.

Several processes (`BOT_WORKERS` > 1): each worker has its own memory, and the worker
that answers a scrape would show its own counts only. prometheus_client's multiprocess
mode keeps every process's values in files of one directory, named by
`PROMETHEUS_MULTIPROC_DIR`, and `/metrics` then adds them up over all the files with
`MultiProcessCollector` on a fresh registry, whichever worker answers. `runbot` with
`BOT_WORKERS` > 1 (backend/bot/workers.py) sets it up:

- the variable must be in the environment of the bot's processes before any of them
  starts (it decides, when prometheus_client is imported, where the values go): when it
  is not set, `runbot` makes a temporary directory, names it there for its workers, and
  removes it when they have stopped. To choose one, set it in the bot's environment
  only: not in `.env`, which the admin server reads too, and not one shared by two bots.
- The directory is emptied (`reset_multiprocess_dir()`) before the first worker starts:
  otherwise the files of earlier runs (named by pid) would be added to the new counts
  for ever. It is never emptied while workers run: a worker's counts would be lost
  (Prometheus would see a counter reset). Keep nothing else in it: every `*.db` file
  there is read as one of prometheus_client's.
- A worker's files stay after it exits, on purpose: its counts are part of the totals.
  prometheus_client's `mark_process_dead(pid)` only cleans up after live gauges
  (`multiprocess_mode="live…"`), and there are none here, so it has nothing to do.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from loguru import logger
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

if TYPE_CHECKING:  # nothing heavy at import: the poller, and so the admin server, imports this
    from aiohttp import web

    from backend.payments.services import BillTransition

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name

UPDATES = Counter(
    "topup_updates_total", "Updates the dispatcher received, by update type.", ["type"]
)
UPDATE_ERRORS = Counter(
    "topup_update_errors_total",
    "Updates whose middlewares or handlers raised an exception, by update type.",
    ["type"],
)
TELEGRAM_REQUESTS = Counter(
    "topup_telegram_requests_total",
    "HTTP requests to the Telegram Bot API (each retry counted), by method and status: "
    "ok, an HTTP code, 5xx, error, bad_response, network_error.",
    ["method", "status"],
)
BILLS = Counter(
    "topup_bills_total",
    "Bill events by provider: created, failed, paid, rejected, expired.",
    ["provider", "event"],
)
CREDITED_RUBLES = Counter(
    "topup_credited_rubles_total", "Rubles credited to balances for paid bills.", ["provider"]
)
POLL_ROUND_SECONDS = Histogram(
    "topup_poll_round_seconds",
    "Duration of one round of the bill poller.",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)

# The events of bill_transition, by the status a bill moved to.
_EVENT_OF_STATUS = {
    "WAITING": "created",  # a bill left NEW by the provider's answer (after a crash)
    "PAID": "paid",
    "REJECTED": "rejected",
    "EXPIRED": "expired",
    "FAILED": "failed",
}

# The labelled children of the hot paths, so that an update costs a dict lookup.
_update_children: dict[str, tuple[Counter, Counter]] = {}
_request_children: dict[tuple[str, str], Counter] = {}
_failed = False
# The files of multiprocess mode: one per metric type (and gauge mode) and process.
_VALUE_FILE = re.compile(r"(?:counter|histogram|summary|gauge_[a-z]+)_\d+\.db")


def _multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


def _broken(what: str) -> None:
    """Counting never breaks the bot (a full disk, a removed directory): said once."""
    global _failed
    if not _failed:
        _failed = True
        logger.opt(exception=True).error("metrics: counting {} failed (said once)", what)


def count_update(update_type: str, *, failed: bool = False) -> None:
    """One update of `update_type` received; `failed`: it raised."""
    try:
        children = _update_children.get(update_type)
        if children is None:
            children = (UPDATES.labels(update_type), UPDATE_ERRORS.labels(update_type))
            _update_children[update_type] = children
        children[0].inc()
        if failed:
            children[1].inc()
    except Exception:
        _broken("an update")


def count_request(method: str, status: str) -> None:
    """One HTTP request to the Bot API: its method (`sendMessage`) and status."""
    try:
        child = _request_children.get((method, status))
        if child is None:
            child = _request_children[method, status] = TELEGRAM_REQUESTS.labels(method, status)
        child.inc()
    except Exception:
        _broken("a Bot API request")


def bill_created(provider: str) -> None:
    """The provider took a new bill (its pay link or invoice exists)."""
    _bill_event(provider, "created")


def bill_failed(provider: str) -> None:
    """The provider did not take a new bill: it can never be paid."""
    _bill_event(provider, "failed")


def bill_transition(transition: BillTransition) -> None:
    """Count what a `BillTransition` did: a move of its bill (only a call that moved it has
    `changed`, so each move is counted once, whoever reports it) and a credit."""
    if not transition.changed:
        return
    bill = transition.bill
    event = _EVENT_OF_STATUS.get(str(bill.status))
    if event is not None:
        _bill_event(bill.provider, event)
    if transition.credited:
        try:
            CREDITED_RUBLES.labels(bill.provider).inc(float(bill.amount))
        except Exception:
            _broken("a credit")


def _bill_event(provider: str, event: str) -> None:
    try:
        BILLS.labels(provider, event).inc()
    except Exception:
        _broken("a bill")


@contextmanager
def poll_round_timer(provider: str) -> Iterator[None]:
    """Observes the duration of the round run inside it (a failed one too)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        try:
            POLL_ROUND_SECONDS.labels(provider).observe(time.perf_counter() - start)
        except Exception:
            _broken("a poll round")


def registry() -> CollectorRegistry:
    """What `/metrics` shows: the sum over every process's files in multiprocess mode,
    this process's metrics otherwise."""
    path = _multiprocess_dir()
    if path is None:
        return REGISTRY
    collected = CollectorRegistry()
    MultiProcessCollector(collected, path=path)
    return collected


async def metrics_view(request: web.Request) -> web.Response:
    """`GET /metrics`: the metrics in Prometheus' text exposition format."""
    from aiohttp import web

    body = generate_latest(registry())
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def reset_multiprocess_dir(path: str | None = None) -> None:
    """Create the multiprocess directory (`PROMETHEUS_MULTIPROC_DIR` by default) or empty
    it of prometheus_client's files: for whoever starts the workers, before the first one
    starts. Only the files named as prometheus_client names them go (`counter_<pid>.db`,
    …): a wrong path loses nothing else."""
    path = path or _multiprocess_dir()
    if path is None:
        return
    os.makedirs(path, exist_ok=True)
    for entry in os.scandir(path):
        if _VALUE_FILE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            os.remove(entry.path)


def _check_multiprocess_mode() -> None:
    path = _multiprocess_dir()
    if path is None:
        return
    try:  # the values are written there from the first count on
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        logger.error("{} {!r} cannot be created: {}", MULTIPROC_DIR_VARIABLE, path, e)
    if values.ValueClass is values.MutexValue:
        logger.warning(
            "{} is set, but prometheus_client was imported before it was: this process "
            "counts in its memory only, and /metrics will not show its counts",
            MULTIPROC_DIR_VARIABLE,
        )


_check_multiprocess_mode()
