"""The alert dispatcher: sends what the outbox holds, off the ingest path.

One asyncio task reads the pending deliveries (``store.outbox.due_deliveries``, on the store's
read-only connection, so it never queues behind writes) and starts one task per delivery, at
most ``per_channel_concurrency`` at once per channel; each makes one attempt through
``notify.events.deliver`` and writes its outcome through the store's writer. The task sleeps
until the outbox says something is queued (a listener called after each commit that queued
deliveries), until the next retry is due, or ``POLL_SECS`` at most.

Retries: exponential backoff from ``retry_base_secs`` (doubling, at most ``retry_max_secs``) with
jitter (each wait drawn between half and all of it); a 429/503 ``Retry-After`` lengthens the wait
to what the service asked. A non-retryable answer (the sender's verdict: a 4xx config error)
fails at once; a delivery still failing ``give_up_after_secs`` after it was queued is marked
``failed``. A deleted or disabled channel's pending deliveries are ``cancelled`` when their turn
comes. A channel that hangs holds only its own slots: other channels, ingestion and detection
never wait for it.

Every "now" here (what is due, when the next attempt is, the give-up time, the time an outcome
is recorded) comes from the dispatcher's ``clock``, the app's; the loop still sleeps for real.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from ingest.metrics import Counter, Gauge, Histogram, MetricSet
from notify.events import AlertEvent, Attempt, ChannelTarget, deliver
from store import Store, outbox
from store.clock import SYSTEM_CLOCK, Clock
from store.types import Channel

from .config import AlertsConfig

__all__ = ["ALERT_METRICS", "DISPATCHER", "AlertMetrics", "Dispatcher"]

log = logging.getLogger("floodwatch.alerts")

POLL_SECS = 5.0
"""Longest sleep between two reads of the outbox (a missed wake-up costs at most this)."""
SCAN_LIMIT = 1000
_DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class AlertMetrics(MetricSet):
    """Alert counters on ``/metrics`` (``api.metrics`` exposes them), labelled by channel type
    only (a fixed set)."""

    def __init__(self) -> None:
        self.sent = Counter(
            "floodwatch_alerts_sent_total", "Alert deliveries that succeeded", ("type",)
        )
        self.failed = Counter(
            "floodwatch_alerts_failed_total",
            "Alert deliveries given up (non-retryable answer or give-up time reached)",
            ("type",),
        )
        self.retried = Counter(
            "floodwatch_alerts_retried_total", "Failed alert attempts scheduled again", ("type",)
        )
        self.queue_depth = Gauge(
            "floodwatch_alerts_queue_depth", "Alert deliveries pending in the outbox"
        )
        self.delivery_seconds = Histogram(
            "floodwatch_alerts_delivery_seconds",
            "From the incident change that queued an alert to its successful delivery",
            _DELIVERY_BUCKETS,
        )


ALERT_METRICS = AlertMetrics()


def _attempt_fields(attempt: Attempt) -> dict[str, Any]:
    return dataclasses.asdict(attempt)


class Dispatcher:
    """Inert until ``start()``; ``stop()`` cancels attempts in flight (their deliveries stay
    pending and are sent again, with the same delivery id, after the next start)."""

    def __init__(
        self,
        store: Store,
        cfg: AlertsConfig,
        metrics: AlertMetrics = ALERT_METRICS,
        clock: Clock = SYSTEM_CLOCK,
    ):
        self.store = store
        self.clock = clock
        self.cfg = cfg
        self.metrics = metrics
        self.session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._per_channel: dict[int, int] = {}
        self._queues: dict[int, collections.deque[dict[str, Any]]] = {}
        self._waiting: set[str] = set()
        # seq of every delivery waiting or in flight: a read leaves them out
        self._seqs: dict[str, int] = {}
        self._scan = 0
        # delivery id -> the scan during which its attempt finished: that scan's read may
        # predate the attempt's record and must not start it again
        self._finished: dict[str, int] = {}
        self._records: list[tuple[outbox.AttemptRecord, asyncio.Future[None]]] = []
        self._record_wake = asyncio.Event()
        self._recorder: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # no pool-wide connection limit: a hanging service must not starve the others
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        self.session = aiohttp.ClientSession(connector=connector, trust_env=False)
        if self.cfg.enabled:
            outbox.add_listener(self.wake)
            self._task = asyncio.create_task(self._run(), name="alert-dispatcher")
            self._recorder = asyncio.create_task(self._record_loop(), name="alert-recorder")

    async def stop(self) -> None:
        outbox.remove_listener(self.wake)
        tasks = [t for t in (self._task, self._recorder, *self._inflight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = self._recorder = None
        self._inflight.clear()
        self._queues.clear()
        self._waiting.clear()
        self._seqs.clear()
        if self.session is not None:
            await self.session.close()
            self.session = None

    def wake(self) -> None:
        """Thread-safe: called by the store's writer thread after a commit."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            wait = POLL_SECS
            self._scan += 1
            scan = self._scan
            self._finished = {k: v for k, v in self._finished.items() if v >= scan}
            try:
                now = self.clock.now()
                rows, earliest, depth = await self.store.read(
                    outbox.due_deliveries, now, SCAN_LIMIT, list(self._seqs.values())
                )
                self.metrics.queue_depth.set(depth)
                for row in rows:
                    if self._finished.get(row["delivery_id"], -1) < scan:
                        self._enqueue(row)
                for channel_id in list(self._queues):
                    self._pump(channel_id)
                if earliest is not None:
                    ahead = (earliest - now).total_seconds()
                    if ahead > 0:
                        wait = min(wait, ahead)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert outbox read failed")
                wait = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.01, wait))

    def _enqueue(self, row: dict[str, Any]) -> None:
        """Due rows wait in their channel's queue for a free slot, so that a slot freed starts
        the next delivery at once rather than after another read of the outbox."""
        delivery_id = row["delivery_id"]
        if delivery_id in self._inflight or delivery_id in self._waiting:
            return
        self._waiting.add(delivery_id)
        self._seqs[delivery_id] = int(row["seq"])
        self._queues.setdefault(int(row["channel_id"]), collections.deque()).append(row)

    def _pump(self, channel_id: int) -> None:
        queue = self._queues.get(channel_id)
        while queue and self._per_channel.get(channel_id, 0) < self.cfg.per_channel_concurrency:
            row = queue.popleft()
            self._waiting.discard(row["delivery_id"])
            self._per_channel[channel_id] = self._per_channel.get(channel_id, 0) + 1
            self._inflight[row["delivery_id"]] = asyncio.create_task(
                self._attempt(row), name=f"alert-{row['delivery_id'][:8]}"
            )
        if not queue:
            self._queues.pop(channel_id, None)

    async def _attempt(self, row: dict[str, Any]) -> None:
        channel_id = int(row["channel_id"])
        released = False

        def release() -> None:
            """The channel's slot is free once the service answered (recording the outcome
            waits for the store's writer, which the service need not wait for)."""
            nonlocal released
            if released:
                return
            released = True
            left = self._per_channel.get(channel_id, 1) - 1
            if left > 0:
                self._per_channel[channel_id] = left
            else:
                self._per_channel.pop(channel_id, None)
            self._pump(channel_id)

        try:
            await self._attempt_once(row, release)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("alert delivery failed unexpectedly channel=%s", channel_id)
        finally:
            self._finished[row["delivery_id"]] = self._scan
            self._inflight.pop(row["delivery_id"], None)
            self._seqs.pop(row["delivery_id"], None)
            release()
            self._wake.set()

    async def _record(self, record: outbox.AttemptRecord) -> None:
        """Hand one attempt's outcome to the recorder and wait until it is committed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._records.append((record, done))
        self._record_wake.set()
        await done

    async def _record_loop(self) -> None:
        """Writes the outcomes of every attempt that finished meanwhile in one transaction:
        a burst of deliveries costs a few commits on the store's writer, not one each."""
        while True:
            await self._record_wake.wait()
            self._record_wake.clear()
            batch, self._records = self._records, []
            if not batch:
                continue
            try:
                await self.store.run(outbox.record_attempts, [r for r, _ in batch])
            except asyncio.CancelledError:
                for _, done in batch:
                    done.cancel()
                raise
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _attempt_once(self, row: dict[str, Any], release: Callable[[], None]) -> None:
        if not row["channel_exists"] or not row["channel_enabled"]:
            why = "channel deleted" if not row["channel_exists"] else "channel disabled"
            fields = {"error": why, "latency_ms": 0.0}
            await self._record((row, fields, "cancelled", self.clock.now(), None))
            return
        channel = {
            "id": row["channel_id"],
            "uuid": row["channel_uuid"],
            "name": row["channel_name"],
            "type": row["channel_type"],
            "config": row["channel_config"],
        }
        event = AlertEvent.from_json(row["payload"])
        attempt = await self._send(channel, event, row["delivery_id"], row["remote_ref"])
        release()
        now = self.clock.now()
        ctype = str(channel["type"])
        outcome, next_at = self._next_step(row, attempt, now)
        fields = _attempt_fields(attempt)
        if outcome == "failed" and attempt.retryable:
            fields["error"] = f"gave up after {int(row['attempts']) + 1} attempts: {attempt.error}"
        await self._record((row, fields, outcome, now, next_at))
        if outcome == "sent":
            self.metrics.sent.inc(1, ctype)
            created: datetime = row["created_at"]
            self.metrics.delivery_seconds.observe(max(0.0, (now - created).total_seconds()))
        elif outcome == "failed":
            self.metrics.failed.inc(1, ctype)
            log.warning(
                "alert delivery failed channel=%s type=%s kind=%s attempts=%d",
                channel["id"],
                ctype,
                row["kind"],
                int(row["attempts"]) + 1,
            )
        else:
            self.metrics.retried.inc(1, ctype)

    async def _send(
        self,
        channel: Mapping[str, Any],
        event: AlertEvent,
        delivery_id: str,
        remote_ref: str | None,
    ) -> Attempt:
        assert self.session is not None
        target = ChannelTarget(
            id=int(channel["id"]),
            uuid=str(channel["uuid"]),
            name=str(channel["name"]),
            type=str(channel["type"]),
            config=channel["config"],
        )
        try:
            return await deliver(
                self.session,
                target,
                event,
                delivery_id=delivery_id,
                timeout=self.cfg.attempt_timeout_secs,
                remote_ref=remote_ref,
                clock=self.clock,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a sender's bug: retrying would not help
            log.exception("alert sender error type=%s", channel["type"])
            return Attempt(
                ok=False,
                latency_ms=0.0,
                error=f"internal error: {type(exc).__name__}",
                retryable=False,
            )

    def _next_step(
        self, row: dict[str, Any], attempt: Attempt, now: datetime
    ) -> tuple[str, datetime | None]:
        """``sent``, ``failed``, or ``retry`` with the time of the next attempt."""
        if attempt.ok:
            return "sent", None
        if not attempt.retryable:
            return "failed", None
        created: datetime = row["created_at"]
        deadline = created + timedelta(seconds=self.cfg.give_up_after_secs)
        if now >= deadline:
            return "failed", None
        backoff = min(self.cfg.retry_max_secs, self.cfg.retry_base_secs * 2 ** int(row["attempts"]))
        wait = backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
        if attempt.retry_after is not None and attempt.retry_after > 0:
            wait = max(wait, attempt.retry_after)
            if now + timedelta(seconds=wait) > deadline:
                return "failed", None  # the service asks us to wait past the give-up time
        return "retry", min(now + timedelta(seconds=wait), deadline)

    # ------------------------------------------------------------------ tests from the API

    async def send_test(self, ws_uuid: uuid.UUID, channel: Channel) -> dict[str, Any]:
        """Send a ``test`` event to ``channel`` now (one attempt, no retry), log it like any
        delivery and return the attempt's outcome."""
        now = self.clock.now()
        workspace = await self.store.read(outbox.workspace_ref, ws_uuid)
        event = AlertEvent(
            event_id=str(uuid.uuid4()),
            kind="test",
            occurred_at=now,
            workspace=workspace,
            node=None,
            incident=None,
        )
        delivery_id = str(uuid.uuid4())
        attempt = await self._send(channel, event, delivery_id, None)
        fields = _attempt_fields(attempt)
        done = self.clock.now()
        await self.store.run(
            outbox.record_test, ws_uuid, int(channel["id"]), event, fields, delivery_id, done
        )
        ctype = str(channel["type"])
        (self.metrics.sent if attempt.ok else self.metrics.failed).inc(1, ctype)
        return {
            "delivered": attempt.ok,
            "delivery_id": delivery_id,
            "event_id": event.event_id,
            "status": "sent" if attempt.ok else "failed",
            "http_status": attempt.http_status,
            "smtp_reply": attempt.smtp_reply,
            "error": attempt.error,
            "latency_ms": round(attempt.latency_ms, 2),
            "retryable": attempt.retryable,
            "at": done.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


DISPATCHER = web.AppKey("dispatcher", Dispatcher)


async def dispatcher_ctx(app: web.Application) -> Any:
    """cleanup_ctx: start the app's dispatcher after the store, stop it before."""
    dispatcher = app[DISPATCHER]
    await dispatcher.start()
    yield
    await dispatcher.stop()
