"""Sends notification deliveries in the background and keeps their log.

The ``notification_deliveries`` table is the queue: a delivery is a row, ``pending`` with
a ``next_attempt_at`` until it is ``delivered`` or ``failed``. One thread watches it:

* work handed over by job threads (:meth:`DeliveryWorker.enqueue`, e.g. "turn this job
  event into deliveries") runs first, so a job never waits for the catalog or a receiver;
* rows that are due are claimed (their ``next_attempt_at`` pushed one lease ahead, so
  another server sharing the catalog, or this one after a crash, tries again only once
  the lease is over) and sent on a small thread pool;
* each try is written back: ``attempts``, ``last_status_code``, ``last_error``,
  ``last_attempt_at``, a ``history`` entry, and then ``delivered``, ``failed``, or
  ``pending`` again with ``next_attempt_at = now + base * 2**(attempts - 1)`` (at most
  ``max_delay``) when the failure may pass (network errors, HTTP 5xx/408/429, SMTP 4xx).

Because the state lives in the catalog, pending deliveries survive a restart: the next
start picks them up.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import NotificationDelivery, Webhook
from strongbox.catalog.types import utcnow
from strongbox.services.delivery_attempt import Outcome
from strongbox.services.email_sender import EmailSender
from strongbox.services.secret_box import SecretBox
from strongbox.services.webhook_delivery import WebhookSender

log = logging.getLogger(__name__)

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
STATUSES = (PENDING, DELIVERED, FAILED)
WEBHOOK = "webhook"
EMAIL = "email"
CHANNELS = (WEBHOOK, EMAIL)
MAX_HISTORY = 50
# Look at the table at least this often, for rows another server process added.
POLL_SECONDS = 30.0


@dataclass(frozen=True)
class DeliveryView:
    id: str
    tenant: str
    channel: str
    webhook_id: str | None
    target: str
    event: str
    payload: dict[str, Any]
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    last_attempt_at: datetime | None
    history: list[dict[str, Any]]


def delivery_view(row: NotificationDelivery) -> DeliveryView:
    return DeliveryView(row.id, row.tenant, row.channel, row.webhook_id, row.target, row.event,
                        dict(row.payload), row.status, row.attempts, row.last_status_code,
                        row.last_error, row.next_attempt_at, row.created_at, row.delivered_at,
                        row.last_attempt_at, list(row.history or []))


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_seconds: float = 30.0
    max_seconds: float = 3600.0

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed try: base, 2x base, 4x base, ..."""
        seconds = self.base_seconds * 2 ** min(max(attempts - 1, 0), 60)
        return timedelta(seconds=min(seconds, self.max_seconds))


class DeliveryWorker:
    def __init__(self, catalog: Catalog, secrets_box: SecretBox, webhooks: WebhookSender,
                 email: EmailSender | None, *, policy: RetryPolicy, workers: int = 4,
                 lease_seconds: float = 120.0,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.catalog = catalog
        self.secrets = secrets_box
        self.webhooks = webhooks
        self.email = email
        self.policy = policy
        self.workers = workers
        self.lease = timedelta(seconds=lease_seconds)
        self.clock = clock
        self._intake: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="strongbox-deliver")
        self._thread = threading.Thread(target=self._loop, name="strongbox-notifications",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Turn queued work into rows, let running tries end, and stop; what is still
        pending is sent by the next start."""
        if self._thread is None:
            self._run_intake()
            return
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self.webhooks.close()

    def enqueue(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the worker thread soon; returns at once."""
        self._intake.put(work)
        self._wake.set()

    def wake(self) -> None:
        """New pending rows: look now rather than at the next poll."""
        self._wake.set()

    # --- the loop -----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self._run_intake()
                self._dispatch_due()
                wait = self._seconds_to_next()
            except Exception:  # the catalog was briefly unavailable: try again soon
                log.exception("notification worker: a round failed")
                wait = 1.0
            self._wake.wait(wait)
        self._run_intake()

    def _run_intake(self) -> None:
        while True:
            try:
                work = self._intake.get_nowait()
            except queue.Empty:
                return
            try:
                work()
            except Exception:
                log.exception("notification worker: could not prepare deliveries")

    def _free_slots(self) -> int:
        with self._busy_lock:
            return self.workers - self._busy

    def _dispatch_due(self) -> None:
        slots = self._free_slots()
        if slots <= 0 or self._pool is None or self._stopping.is_set():
            return  # (a row claimed now would wait out its lease after the restart)
        for delivery_id in self._claim_due(slots):
            with self._busy_lock:
                self._busy += 1
            self._pool.submit(self._attempt_in_pool, delivery_id)

    def _attempt_in_pool(self, delivery_id: str) -> None:
        try:
            self._attempt(delivery_id, final=False)
        except Exception:
            log.exception("delivery %s: the try could not be recorded", delivery_id)
        finally:
            with self._busy_lock:
                self._busy -= 1
            self._wake.set()

    def _claim_due(self, limit: int) -> list[str]:
        now = self.clock()
        due = (NotificationDelivery.status == PENDING,
               NotificationDelivery.next_attempt_at.is_not(None),
               NotificationDelivery.next_attempt_at <= now)
        claimed = []
        with self.catalog.session() as session:
            ids = session.scalars(select(NotificationDelivery.id).where(*due)
                                  .order_by(NotificationDelivery.next_attempt_at)
                                  .limit(limit)).all()
            for delivery_id in ids:
                done = session.execute(update(NotificationDelivery)
                                       .where(NotificationDelivery.id == delivery_id, *due)
                                       .values(next_attempt_at=now + self.lease))
                if done.rowcount:  # type: ignore[attr-defined]
                    claimed.append(delivery_id)
        return claimed

    def _seconds_to_next(self) -> float:
        with self.catalog.session() as session:
            soonest = session.scalar(select(func.min(NotificationDelivery.next_attempt_at))
                                     .where(NotificationDelivery.status == PENDING))
        if soonest is None:
            return POLL_SECONDS
        return min(POLL_SECONDS, max(0.0, (soonest - self.clock()).total_seconds()))

    # --- one try ------------------------------------------------------------------------

    def attempt_now(self, delivery_id: str) -> DeliveryView:
        """One try on the caller's thread, without retries (the webhook test)."""
        return self._attempt(delivery_id, final=True)

    def _attempt(self, delivery_id: str, *, final: bool) -> DeliveryView:
        with self.catalog.session() as session:
            row = session.get_one(NotificationDelivery, delivery_id)
            view = delivery_view(row)
        if view.status != PENDING:
            return view
        started = self.clock()
        clock_start = time.monotonic()
        try:
            outcome = self._send(view, started)
        except Exception as exc:  # a bug in a sender must not kill the worker
            log.exception("delivery %s: unexpected error", delivery_id)
            outcome = Outcome.transient(f"unexpected error: {exc}")
        return self._record(delivery_id, outcome, started,
                            round((time.monotonic() - clock_start) * 1000, 1), final=final)

    def _send(self, view: DeliveryView, moment: datetime) -> Outcome:
        if view.channel == EMAIL:
            if self.email is None:
                return Outcome.permanent("SMTP is not configured (STRONGBOX_SMTP_HOST)")
            return self.email.send(view.target, view.payload, view.id)
        url, secret = view.target, None
        if view.webhook_id is not None:
            with self.catalog.session() as session:
                hook = session.get(Webhook, view.webhook_id)
                if hook is None:
                    return Outcome.permanent("the webhook was deleted")
                if not hook.enabled and view.event != "ping":
                    return Outcome.permanent("the webhook is disabled")
                url, sealed = hook.url, hook.secret
            secret = self.secrets.open(sealed)
        return self.webhooks.send(url, view.event, view.id, view.payload, secret, moment)

    def _record(self, delivery_id: str, outcome: Outcome, at: datetime, duration_ms: float,
                *, final: bool) -> DeliveryView:
        with self.catalog.session() as session:
            row = session.get_one(NotificationDelivery, delivery_id)
            row.attempts += 1
            row.last_attempt_at = at
            row.last_status_code = outcome.status_code
            row.last_error = outcome.error
            entry = {"attempt": row.attempts, "at": at.isoformat(),
                     "status_code": outcome.status_code, "error": outcome.error,
                     "duration_ms": duration_ms}
            row.history = [*(row.history or []), entry][-MAX_HISTORY:]
            if outcome.delivered:
                row.status, row.delivered_at, row.next_attempt_at = DELIVERED, at, None
            elif outcome.retry and not final and row.attempts < self.policy.max_attempts:
                row.next_attempt_at = at + self.policy.delay(row.attempts)
            else:
                row.status, row.next_attempt_at = FAILED, None
            session.flush()
            view = delivery_view(row)
        self._log(view)
        return view

    @staticmethod
    def _log(view: DeliveryView) -> None:
        what = f"delivery {view.id} ({view.event} by {view.channel} to {view.target})"
        if view.status == DELIVERED:
            log.info("%s delivered on try %d", what, view.attempts)
        elif view.status == PENDING:
            log.warning("%s: try %d failed (%s); next try at %s", what, view.attempts,
                        view.last_error, view.next_attempt_at)
        else:
            log.error("%s failed after %d tries: %s", what, view.attempts, view.last_error)
