"""The daemon's event side, started once: a dispatcher per configured webhook and hook, and
the stuck-job check every few seconds. Everything runs on threads of its own."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from batchwatch.alerts import check_seconds
from batchwatch.config_events import (
    AlertSettings,
    HookSettings,
    WebhookSettings,
    endpoint_labels,
)
from batchwatch.delivery.dispatcher import Dispatcher, Endpoint
from batchwatch.delivery.senders import HookSender, WebhookSender
from batchwatch.errors import LeaseLost, StoreUnavailable
from batchwatch.events import EventType
from batchwatch.logs import get_logger
from batchwatch.store import Store
from batchwatch.store.alerts import run_check

log = get_logger("batchwatch.delivery")

#: Webhook deliveries in flight at once per endpoint (each job's events on one of them).
WEBHOOK_LANES = 8


def _now() -> datetime:
    return datetime.now(UTC)


class EventService:
    def __init__(
        self,
        store: Store,
        stop: threading.Event,
        *,
        webhooks: tuple[WebhookSettings, ...],
        hooks: tuple[HookSettings, ...],
        alerts: AlertSettings,
        on_outcome: Callable[[str, str], None],
        on_problem: Callable[[str, str | None], None],
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        """``leading`` (team mode): only the leader delivers and checks for stuck jobs."""
        self.store = store
        self._leading = leading
        self.stop = stop
        self.alerts = alerts
        self._on_problem = on_problem
        labels = endpoint_labels(webhooks, hooks)
        endpoints = [
            Endpoint(
                w.name,
                "webhook",
                _types(w.events),
                WebhookSender(w, _now),
                WEBHOOK_LANES,
                label=labels[w.name],
            )
            for w in webhooks
        ] + [
            Endpoint(h.name, "hook", _types(h.events), HookSender(h), h.concurrency, f"hooks[{n}]")
            for n, h in enumerate(hooks)
        ]
        self.dispatchers = [
            Dispatcher(
                store,
                e,
                stop,
                now=_now,
                on_outcome=on_outcome,
                on_disabled=self._disabled,
                leading=leading,
            )
            for e in endpoints
        ]
        self._checker = threading.Thread(target=self._check_loop, name="alerts", daemon=True)

    def _disabled(self, label: str, reason: str) -> None:
        self._on_problem(f"endpoint {label}", f"{label} disabled: {reason}")

    def wake(self) -> None:
        """Deliver now what is due (this daemon just became the leader)."""
        for d in self.dispatchers:
            d.wake.set()

    def start(self) -> None:
        for d in self.dispatchers:
            self.store.on_events.append(d.wake.set)
            d.start()
        self._checker.start()

    def shutdown(self) -> None:
        self.stop.set()
        for d in self.dispatchers:
            d.wake.set()
            if d.ident is not None:  # (not started when its endpoint could not be registered)
                d.join(timeout=10)
        self._checker.join(timeout=10)

    def _check_loop(self) -> None:
        every = check_seconds(self.alerts)
        while not self.stop.wait(every):
            if not self._leading():
                continue
            try:
                raised = run_check(self.store, _now(), self.alerts)
            except LeaseLost:
                continue  # another daemon leads, and checks
            except StoreUnavailable as exc:
                log.warning("alert_check_failed", error=str(exc))
                continue
            for event in raised:
                log.warning(
                    "job_alert", type=event.type.value, job_id=event.job_id, **_fields(event)
                )


def _types(names: tuple[str, ...]) -> tuple[EventType, ...]:
    return tuple(EventType(n) for n in names)


def _fields(event: object) -> dict[str, object]:
    data = getattr(event, "data", {})
    return {k: data[k] for k in ("reason", "requests_left") if k in data}
