"""The composition root: builds every part from the settings and runs them until told to stop.

Shutdown is one event: SIGTERM/SIGINT set it, and the scheduler and the HTTP server are
stopped when it is set.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from batchwatch import __version__
from batchwatch.config import Settings, api_url
from batchwatch.errors import StartupError
from batchwatch.logs import get_logger, register_secret
from batchwatch.notify import Notifier
from batchwatch.serving import api_server, bind_socket, status_line, wait_started
from batchwatch.tokens import ensure_token

if TYPE_CHECKING:
    from batchwatch.delivery.service import EventService
    from batchwatch.health import Health
    from batchwatch.metrics import Metrics
    from batchwatch.providers.base import ProviderClient
    from batchwatch.results.worker import ResultsWorker
    from batchwatch.scheduler import PollScheduler
    from batchwatch.store import Store
    from batchwatch.team import Team

log = get_logger("batchwatch.daemon")


class Daemon:
    """``start`` builds and starts every part; ``wait`` blocks until the stop event;
    ``close`` stops them in order. ``run`` is the three, for ``batchwatch serve``."""

    def __init__(self, settings: Settings, stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self.api_url = ""
        self._closers: list[Callable[[], object]] = []
        self._web: threading.Thread | None = None
        #: True when shutdown left a poll cycle running (see ``close``).
        self.abandoned_cycle = False
        self.notifier = Notifier()

    def run(self) -> int:
        self._install_signals(self.stop)
        self.start()
        try:
            return self.wait()
        finally:
            self.close()

    def start(self) -> None:
        from batchwatch.actions import Actions
        from batchwatch.api.app import create_app
        from batchwatch.health import Health
        from batchwatch.store import lease, safe_url

        s = self.settings
        providers = s.providers()
        token = self._secrets()
        sock = bind_socket(s.api.host, s.api.port)
        self._closers.append(sock.close)
        self.api_url = api_url(*sock.getsockname()[:2])
        store = self._open_store()
        team = self._join_team(store)
        # What the leader does (poll, fetch results, alert, deliver) writes through a store
        # fenced by its lease; what any daemon does (the API's actions) through the plain one.
        work = store if team is None else store.fenced(lease.fence(team.token))
        health = Health(s.tracking.poll_interval_seconds, datetime.now(UTC))
        metrics = self._metrics(health, store)
        if team is not None:
            health.team(lambda: (team.role.value, team.leader))
            metrics.leader.set_function(lambda: 1.0 if team.leading() else 0.0)
        # One client per provider for the poller's thread, one for the API's request threads.
        clients = [self._upstream(name, metrics) for name in providers]
        action_clients = [self._upstream(c.provider, metrics, wait_with=c) for c in clients]
        self._closers += [c.close for c in clients + action_clients]
        scheduler = self._scheduler(clients, work, health, metrics, team)
        app = create_app(
            store,
            health,
            token,
            Actions(action_clients, store),
            s.prices,
            stop=self.stop,
            results_dir=s.results_dir,
            upstream_held=lambda: max(c.held_seconds() for c in clients),
        )
        metrics.install(app)
        self._serve(app, sock)
        worker = self._start_results(work, health, metrics, clients, team)
        events = self._start_events(work, health, metrics, team)
        # Last: the heartbeat starts with the scheduler, and READY=1 must come first.
        scheduler.start()
        self._closers.append(lambda: self._stop_scheduler(scheduler))
        if team is not None:
            team.on_gained.append(lambda _epoch: _take_over(health, scheduler, events, worker))
            team.start()
        log.info(
            "daemon_started",
            api=self.api_url,
            database=safe_url(s.database_url),
            upstream={name: section.server_url for name, section in providers.items()},
            discover=s.tracking.discover,
            poll_interval_seconds=s.tracking.poll_interval_seconds,
            role=health.snapshot(datetime.now(UTC)).role,
        )
        # Ready means: database migrated, API accepting connections, poller scheduled.
        self.notifier.ready(f"listening on {self.api_url}")

    def _secrets(self) -> str:
        """Keep the keys and the API token out of every log line; the token."""
        s = self.settings
        providers = s.providers()
        for section in providers.values():
            register_secret(section.api_key)
        if not s.mistral.api_key and list(providers) == ["mistral"]:
            log.warning(
                "api_key_missing",
                hint="set MISTRAL_API_KEY, OPENAI_API_KEY or ANTHROPIC_API_KEY "
                "(or [mistral] api_key_file, ...)",
            )
        token = ensure_token(s.token_file)
        register_secret(token)
        return token

    def _open_store(self) -> Store:
        from batchwatch.store import Store

        s = self.settings
        store = Store(s.database_url, idle_timeout_ms=self._idle_ms())
        self._closers.append(store.close)
        if store.is_sqlite and store.engine.url.database not in (None, "", ":memory:"):
            from batchwatch.instance import hold_database_file

            try:
                # Before migrating: two daemons started together must not both migrate.
                self._closers.append(hold_database_file(Path(store.engine.url.database)))
            except StartupError:
                self._abandon()  # nothing started: one line says why, no shutdown logged
                raise
        try:
            store.migrate()
        except Exception as exc:
            self.close()
            raise StartupError(f"database.url: cannot migrate the database: {exc}") from None
        return store

    def _idle_ms(self) -> int | None:
        """PostgreSQL: a frozen daemon's transaction (and the write lock it holds) is ended
        by the server within one lease, so the others can go on."""
        s = self.settings
        return None if s.database_url.startswith("sqlite") else int(s.team.lease_seconds * 1000)

    def _join_team(self, store: Store) -> Team | None:
        """PostgreSQL: this daemon joins the daemons sharing the database (``team.py``);
        None on SQLite, where it is alone."""
        if store.is_sqlite:
            return None
        from batchwatch.store import Store
        from batchwatch.team import Team

        s = self.settings
        # A pool of its own: API requests or a long cycle holding the store's connections
        # must never delay a renewal past the lease.
        own = Store(s.database_url, idle_timeout_ms=self._idle_ms())
        self._closers.append(own.close)
        team = Team(own, s.team.name(), s.team.lease_seconds, api_url=self.api_url)
        try:
            team.join()
        except StartupError:
            self.close()
            raise
        # Before the store closes, after everything that works for the leader stopped.
        self._closers.append(team.leave)
        return team

    def _metrics(self, health: Health, store: Store) -> Metrics:
        from batchwatch.config_events import endpoint_labels
        from batchwatch.metrics import Metrics
        from batchwatch.store import events
        from batchwatch.store.alerts import oldest_by_status

        labels = endpoint_labels(self.settings.webhooks, self.settings.hooks)

        metrics = Metrics(
            health,
            store.count_by_status,
            oldest=lambda: oldest_by_status(store),
            backlog=lambda: {
                labels.get(name, "unconfigured"): states
                for name, states in events.counts(store).items()
            },
        )
        metrics.info.labels(__version__).set(1)
        store.on_recorded.append(metrics.recorded)
        return metrics

    def _upstream(
        self, provider: str, metrics: Metrics, wait_with: ProviderClient | None = None
    ) -> ProviderClient:
        """A client of ``provider``; ``wait_with``: one whose ``Retry-After`` waits it shares."""
        from batchwatch.providers.clients import client_class
        from batchwatch.providers.retry import RetryPolicy

        s = self.settings
        section = s.providers()[provider]
        client: ProviderClient = client_class(provider)(
            section.server_url,
            section.api_key,
            timeout=section.timeout_seconds,
            retry=RetryPolicy(attempts=section.max_retries),
            pool_size=s.tracking.concurrency + 2,
            stop=self.stop,
            observer=metrics.upstream,
            on_retry=metrics.retried,
            wait_with=wait_with,
        )
        return client

    def _start_results(
        self,
        store: Store,
        health: Health,
        metrics: Metrics,
        pollers: list[ProviderClient],
        team: Team | None,
    ) -> ResultsWorker | None:
        """The results worker, on its own threads and HTTP clients: never in a cycle's way.
        None when results are not downloaded."""
        from batchwatch.results.worker import ResultsOptions, ResultsWorker

        s = self.settings
        if not s.results.download:
            return None
        clients = [self._upstream(p.provider, metrics, wait_with=p) for p in pollers]
        worker = ResultsWorker(
            {c.provider: c for c in clients},
            store,
            ResultsOptions(s.results_dir, concurrency=s.results.concurrency),
            stop=self.stop,
            on_problem=lambda reason: health.problem("results", reason),
            on_result=metrics.result,
            on_usage=metrics.used,
            leader=team.token if team is not None else None,
        )
        store.on_recorded.append(worker.recorded)
        worker.start()
        self._closers += [*(c.close for c in clients), worker.shutdown]
        return worker

    def _start_events(
        self, store: Store, health: Health, metrics: Metrics, team: Team | None
    ) -> EventService:
        """Webhooks, hooks and stuck-job alerts, on threads of their own."""
        from batchwatch.delivery.service import EventService

        s = self.settings
        for hook in s.webhooks:
            register_secret(hook.secret)
        service = EventService(
            store,
            self.stop,
            webhooks=s.webhooks,
            hooks=s.hooks,
            alerts=s.alerts,
            on_outcome=metrics.delivered,
            on_problem=health.problem,
            leading=team.leading if team is not None else lambda: True,
        )
        service.start()
        self._closers.append(service.shutdown)
        return service

    def _scheduler(
        self,
        clients: list[ProviderClient],
        store: Store,
        health: Health,
        metrics: Metrics,
        team: Team | None,
    ) -> PollScheduler:
        from batchwatch.poller import PollOptions, poll_all
        from batchwatch.scheduler import PollScheduler

        s = self.settings
        options = PollOptions(
            discover=s.tracking.discover,
            page_size=s.tracking.page_size,
            concurrency=s.tracking.concurrency,
        )
        watchdog = self.notifier.watchdog_seconds
        return PollScheduler(
            lambda: poll_all(clients, store, options),
            s.tracking.poll_interval_seconds,
            health,
            on_cycle=metrics.cycle,
            heartbeat=self._heartbeat(health, store) if self.notifier.enabled else None,
            heartbeat_every=min(watchdog / 3, 10.0) if watchdog else 10.0,
            leading=team.leading if team is not None else None,
        )

    def _serve(self, app: Any, sock: socket.socket) -> None:
        """The local API on its own thread, accepting connections on ``sock`` on return."""
        server = api_server(app)
        self._web = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="api", daemon=True
        )
        self._web.start()
        self._closers.append(lambda: self._stop_server(server))
        wait_started(server)

    def _heartbeat(self, health: Health, store: Store) -> Callable[[], None]:
        s = self.settings
        # Longer than any cycle can legitimately take: every request timing out, retried.
        hang_after = timedelta(
            seconds=max(120.0, 4 * s.mistral.timeout_seconds * (s.mistral.max_retries + 1))
        )

        def beat() -> None:
            now = datetime.now(UTC)
            status = status_line(health, store, now)
            if health.poller_alive(now, hang_after):
                self.notifier.watchdog(status)
            else:
                # No WATCHDOG=1: systemd restarts the service once WatchdogSec passes.
                log.error("poller_hung", hang_after_seconds=hang_after.total_seconds())
                self.notifier.send(STATUS=f"poller hung; {status}")

        return beat

    def wait(self) -> int:
        while not self.stop.wait(0.5):
            if self._web is not None and not self._web.is_alive():
                log.error("api_server_stopped")
                return 1
        return 0

    def close(self) -> None:
        self.stop.set()  # ends any retry wait at once
        if not self._closers:
            return
        log.info("daemon_stopping")
        self.notifier.stopping()
        # Stop in reverse order of start: scheduler first (it finishes its cycle), then the
        # API, then the client, the store and the socket.
        while self._closers:
            self._closers.pop()()
        log.info("daemon_stopped")

    def _abandon(self) -> None:
        """Undo a start that got no further than binding and opening: quietly."""
        self.stop.set()
        while self._closers:
            self._closers.pop()()

    def _stop_server(self, server: Any) -> None:
        server.should_exit = True
        if self._web is not None:
            self._web.join(timeout=3)

    def _stop_scheduler(self, scheduler: PollScheduler) -> None:
        # A cycle stuck in a request gets a few seconds; after that it is abandoned: its
        # writes are one transaction, so nothing half-written can remain.
        if not scheduler.shutdown(grace=6.0):
            self.abandoned_cycle = True
            log.warning("poll_abandoned", reason="still running at shutdown")

    @staticmethod
    def _install_signals(stop: threading.Event) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal_received", signal=signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)


def _take_over(
    health: Health, scheduler: PollScheduler, events: EventService, worker: ResultsWorker | None
) -> None:
    """This daemon just became its team's leader: it polls now, delivers what is due, and
    takes over the results a stopped leader left downloading."""
    health.leading(datetime.now(UTC))
    scheduler.poll_now()
    events.wake()
    if worker is not None:
        worker.resume()
