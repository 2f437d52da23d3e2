"""The CLI's commands that run batchwatch itself rather than ask the daemon: serve, poll,
migrate, config check, simulate and demo.

They load the full settings (pydantic), the store and the providers' clients, all imported
inside the command that uses them so the query commands never pay for them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from batchwatch.cli.command import EXIT_ERROR, EXIT_OK, AddCommand
from batchwatch.cli.display import print_json
from batchwatch.errors import ApiError, StartupError, UserError
from batchwatch.providers import PROVIDERS

if TYPE_CHECKING:
    from batchwatch.config import Settings
    from batchwatch.poller import CycleReport
    from batchwatch.store import Store


def _settings(args: argparse.Namespace) -> Settings:
    from batchwatch import logs
    from batchwatch.config import load_settings

    settings = load_settings(args.config)
    logs.configure(settings.log.level, settings.log.format)
    return settings


def cmd_serve(args: argparse.Namespace) -> int:
    from batchwatch.daemon import Daemon

    daemon = Daemon(_settings(args))
    code = daemon.run()
    if daemon.abandoned_cycle:
        # A poll cycle is stuck in a request past the shutdown grace. Its writes are one
        # transaction, which the database rolls back: exit now instead of waiting for it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _migrate(store: Store) -> None:
    """As the daemon does at start: an unreachable or refusing database is one line."""
    try:
        store.migrate()
    except Exception as exc:
        first = str(exc).strip().splitlines() or [type(exc).__name__]
        raise StartupError(f"database.url: cannot migrate the database: {first[0]}") from None


def cmd_migrate(args: argparse.Namespace) -> int:
    from batchwatch.store import Store, safe_url

    settings = _settings(args)
    store = Store(settings.database_url)
    try:
        _migrate(store)
    finally:
        store.close()
    print(f"database is at the latest schema: {safe_url(settings.database_url)}")
    return EXIT_OK


def cmd_poll(args: argparse.Namespace) -> int:
    """One poll cycle of every configured provider, as the daemon runs it on its schedule,
    then exit: for cron, for a first look at a new configuration, for a script that wants
    the database current now."""
    from batchwatch.poller import PartialCycle, PollOptions, poll_all, utc_now
    from batchwatch.providers import provider
    from batchwatch.store import Store

    s = _settings(args)
    sections = s.providers()
    if not any(section.api_key for section in sections.values()):
        raise UserError(
            "no API key: set MISTRAL_API_KEY, OPENAI_API_KEY or ANTHROPIC_API_KEY "
            "(or mistral.api_key_file, openai.api_key_file, anthropic.api_key_file)"
        )
    store = Store(s.database_url)
    clients = _clients(s)
    options = PollOptions(
        discover=s.tracking.discover,
        page_size=s.tracking.page_size,
        concurrency=s.tracking.concurrency,
    )
    try:
        _migrate(store)
        report = poll_all(clients, store, options, utc_now)
    except ApiError as exc:  # one provider (poll_all names the failing ones otherwise)
        (name, section), *_ = sections.items()
        where = f"{provider(name).label} at {section.server_url}"
        raise UserError(f"cannot poll {where}: {exc.message}") from None
    except PartialCycle as exc:
        raise UserError(f"the poll cycle was partial: {exc}") from None
    finally:
        for client in clients:
            client.close()
        store.close()
    _print_report(report, as_json=args.json)
    return EXIT_OK


def _clients(s: Settings) -> list[Any]:
    """A client of each configured provider, as the daemon makes its poller's."""
    from batchwatch.logs import register_secret
    from batchwatch.providers.clients import client_class
    from batchwatch.providers.retry import RetryPolicy

    clients = []
    for name, section in s.providers().items():
        register_secret(section.api_key)
        clients.append(
            client_class(name)(
                section.server_url,
                section.api_key,
                timeout=section.timeout_seconds,
                retry=RetryPolicy(attempts=section.max_retries),
                pool_size=s.tracking.concurrency + 2,
            )
        )
    return clients


def _print_report(report: CycleReport, *, as_json: bool) -> None:
    if as_json:
        print_json(asdict(report))
        return
    print(
        f"poll cycle: {report.listed} listed, {report.discovered} discovered, "
        f"{report.departed} departed, {report.transitions} transitions, "
        f"{report.progress} progress samples, {report.skipped} skipped, "
        f"{report.deleted} deleted, in {report.seconds:.2f}s"
    )


def _fault_option(parse: str) -> Callable[[str], Any]:
    """An argparse ``type`` for ``simulate``'s fault options: ``simulator_faults.<parse>``,
    imported only when the option is given; its message, which names the bad item, becomes
    argparse's error (exit 2)."""

    def convert(text: str) -> Any:
        from batchwatch.simulator import faults as simulator_faults

        try:
            return getattr(simulator_faults, parse)(text)
        except simulator_faults.FaultSpecError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def cmd_simulate(args: argparse.Namespace) -> int:
    from batchwatch.providers import provider
    from batchwatch.simulator.faults import with_timings
    from batchwatch.simulator.server import serve
    from batchwatch.simulator.settings import SimulatorSettings

    faults = with_timings(args.faults or (), args.retry_after, args.stall_seconds)
    sim = SimulatorSettings(
        api_key=args.api_key,
        queue_seconds=args.queue_seconds,
        run_seconds=args.run_seconds,
        cancel_seconds=args.cancel_seconds,
        latency_seconds=args.latency_ms / 1000.0,
        faults=faults,
        fault_seed=args.fault_seed,
    )
    injected = ",".join(f"{rule.fault}:{rule.rate:g}" for rule in faults)
    print(
        f"{provider(args.provider).label} simulator on http://{args.host}:{args.port} "
        f"(api key: {'as given' if args.api_key else 'any'}"
        f"{f'; faults {injected}, seed {args.fault_seed}' if faults else ''}); Ctrl-C stops it",
        file=sys.stderr,
    )
    serve(sim, args.host, args.port, provider=args.provider)
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    from batchwatch.config import config_problems, find_config_file

    path = args.file or find_config_file(args.config, os.environ)
    if path is None:
        raise UserError("no config file to check: name one, or set --config/$BATCHWATCH_CONFIG")
    problems = config_problems(str(path))
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    if problems:
        return EXIT_ERROR
    print(f"{path}: ok")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from batchwatch.demo import run_demo

    return run_demo(jobs=args.jobs, keep=args.keep)


def _add_simulate(add: AddCommand) -> None:
    sim = add(
        "simulate",
        cmd_simulate,
        "run only a simulator of one provider's batch API (Mistral's by default)",
    )
    sim.add_argument(
        "--provider",
        choices=PROVIDERS,
        default=PROVIDERS[0],
        help="whose API it speaks; point that provider's server_url at it",
    )
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8780)
    sim.add_argument("--api-key", default=None, help="accept only this bearer key")
    sim.add_argument("--queue-seconds", type=float, default=2.0, help="time a job stays QUEUED")
    sim.add_argument("--run-seconds", type=float, default=10.0, help="time a job runs")
    sim.add_argument(
        "--cancel-seconds",
        type=float,
        default=1.0,
        help="time from CANCELLATION_REQUESTED to CANCELLED",
    )
    sim.add_argument("--latency-ms", type=float, default=0.0, help="added to every response")
    sim.add_argument(
        "--faults",
        metavar="SPEC",
        type=_fault_option("parse_fault_spec"),
        help="inject upstream faults: comma-separated name:rate, e.g. 429:0.05,reset:0.01 "
        "(names: 429 500 502 503 504 stall slow reset drop_create truncate garbage "
        "missing_field unknown_status; GET /_sim/faults shows them)",
    )
    sim.add_argument(
        "--fault-seed", type=int, default=0, metavar="N", help="seed of the fault dice (default 0)"
    )
    sim.add_argument(
        "--retry-after",
        type=_fault_option("parse_retry_after"),
        metavar="SECONDS",
        help="Retry-After of injected 429s and 503s, whole seconds (default 1)",
    )
    sim.add_argument(
        "--stall-seconds",
        type=_fault_option("parse_stall_seconds"),
        metavar="SECONDS",
        help="how long a stall delays its response, or a slow one trickles out (default 5)",
    )


def register(add: AddCommand) -> None:
    add("serve", cmd_serve, "run the daemon in the foreground (scheduler + local API)")
    poll = add("poll", cmd_poll, "run one poll cycle of every configured provider, then exit")
    poll.add_argument(
        "--once", action="store_true", required=True, help="one cycle (the only mode)"
    )
    poll.add_argument("--json", action="store_true", help="the cycle's report as JSON")
    add("migrate", cmd_migrate, "apply the database migrations")
    _add_simulate(add)
    # `check` is config's one action, and a required one (`config` alone is a usage error,
    # exit 2): its command is set on `config` itself.
    config = add("config", cmd_config_check, "work with the configuration")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser("check", help="validate a config file and list every problem")
    check.add_argument("file", nargs="?", help="the file (default: the one batchwatch would use)")
    demo = add("demo", cmd_demo, "show batchwatch working against the built-in simulator")
    demo.add_argument("--jobs", type=int, default=5, help="how many jobs to submit (1-20)")
    demo.add_argument("--keep", action="store_true", help="keep the demo's database directory")
