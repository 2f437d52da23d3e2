"""The ``batchwatch`` command: one parser, one function per subcommand, one place that turns
errors into a clear line and an exit code.

Heavy modules are imported inside the subcommands that use them, so a query command
starts fast: the commands that talk to the daemon (jobs, show, create, ..., wait) read
their settings with the standard library (``config.load_client_settings``), speak HTTP with
``http.client`` (``local``, not requests), and ``jobs`` off a terminal prints a plain table
(not rich). FastAPI, SQLAlchemy, structlog and pydantic are for serve, migrate, config
check and demo.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from batchwatch.errors import UserError

if TYPE_CHECKING:
    from batchwatch.errors import ApiError

from batchwatch import __version__
from batchwatch.cli import actions as cli_actions
from batchwatch.cli.actions import Command
from batchwatch.models import MISTRAL_STATUSES

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

STATUS_CHOICES = tuple(status.value for status in MISTRAL_STATUSES)




def _settings(args: argparse.Namespace) -> Any:
    from batchwatch.config import load_settings

    return load_settings(args.config)


def _configure_logs(settings: Any) -> None:
    from batchwatch import logs

    logs.configure(settings.log.level, settings.log.format)


def _daemon_client(args: argparse.Namespace) -> Any:
    from batchwatch.cli.daemon_client import LocalClient
    from batchwatch.config import load_client_settings
    from batchwatch.tokens import read_token

    settings = load_client_settings(args.config)
    url = args.url or settings.api_url
    try:
        return LocalClient(url, read_token(settings.token_file))
    except ValueError as exc:
        raise UserError(f"--url: {exc}") from None


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False, default=str))


def stdout_is_terminal() -> bool:
    """Whether rich would treat stdout as a terminal, by its own rule (TTY_COMPATIBLE, then
    FORCE_COLOR, then isatty), decided without importing it."""
    tty_compatible = os.environ.get("TTY_COMPATIBLE", "")
    if tty_compatible in ("0", "1"):
        return tty_compatible == "1"
    force_color = os.environ.get("FORCE_COLOR")
    if force_color is not None:
        return force_color != ""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # no stdout, or a closed one
        return False


# ---- subcommands -----------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from batchwatch.daemon import Daemon

    settings = _settings(args)
    _configure_logs(settings)
    daemon = Daemon(settings)
    code = daemon.run()
    if daemon.abandoned_cycle:
        # A poll cycle is stuck in a request past the shutdown grace. Its writes are one
        # transaction, which the database rolls back: exit now instead of waiting for it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def cmd_migrate(args: argparse.Namespace) -> int:
    from batchwatch.store import Store, safe_url

    settings = _settings(args)
    _configure_logs(settings)
    store = Store(settings.database_url)
    try:
        store.migrate()
    finally:
        store.close()
    print(f"database is at the latest schema: {safe_url(settings.database_url)}")
    return EXIT_OK


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
    from batchwatch.simulator.app import SimulatorSettings, serve
    from batchwatch.simulator.faults import with_timings

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
        f"Mistral simulator on http://{args.host}:{args.port} "
        f"(api key: {'as given' if args.api_key else 'any'}"
        f"{f'; faults {injected}, seed {args.fault_seed}' if faults else ''}); Ctrl-C stops it",
        file=sys.stderr,
    )
    serve(sim, args.host, args.port)
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


def cmd_jobs(args: argparse.Namespace) -> int:
    from batchwatch.models import JobStatus
    from batchwatch.providers.mistral.wire import job_to_json

    client = _daemon_client(args)
    found = client.list_tracked([JobStatus(s) for s in args.status or ()], args.model, args.limit)
    if args.json:
        print_json([job_to_json(job) for job in found])
        return EXIT_OK
    if not stdout_is_terminal():
        from batchwatch.cli.display import plain_jobs_table

        print(plain_jobs_table(found))
        return EXIT_OK
    from batchwatch.cli.display import console, jobs_table

    console().print(jobs_table(found))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from batchwatch.providers.mistral.wire import job_to_json

    client = _daemon_client(args)
    job = client.get_job(args.job_id)
    transitions = client.transitions(args.job_id)
    samples = client.progress(args.job_id)
    actions = client.actions(args.job_id)
    if args.json:
        print_json(
            {
                "job": job_to_json(job),
                "transitions": transitions,
                "progress": samples,
                "actions": actions,
            }
        )
        return EXIT_OK
    from batchwatch.cli.display import console, job_details

    for part in job_details(job, transitions, samples, actions):
        console().print(part)
    return EXIT_OK


# ---- parser and error handling ---------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchwatch",
        description="Track Mistral batch jobs and keep every status change they go through.",
    )
    parser.add_argument("--version", action="version", version=f"batchwatch {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML config file (default: $BATCHWATCH_CONFIG, ./batchwatch.toml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    add("serve", cmd_serve, "run the daemon in the foreground (scheduler + local API)")
    add("migrate", cmd_migrate, "apply the database migrations")
    sim = add("simulate", cmd_simulate, "run only the Mistral-compatible simulator")
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
        "(names: 429 500 502 503 504 stall reset drop_create truncate garbage "
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
        help="how long a stall delays its response (default 5)",
    )
    config = add("config", lambda _args: EXIT_USAGE, "work with the configuration")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser("check", help="validate a config file and list every problem")
    check.add_argument("file", nargs="?", help="the file (default: the one batchwatch would use)")
    check.set_defaults(func=cmd_config_check)
    demo = add("demo", cmd_demo, "show batchwatch working against the built-in simulator")
    demo.add_argument("--jobs", type=int, default=5, help="how many jobs to submit (1-20)")
    demo.add_argument("--keep", action="store_true", help="keep the demo's database directory")

    for name, func, help_ in (
        ("jobs", cmd_jobs, "list tracked jobs, newest first"),
        ("show", cmd_show, "one job: its fields, transitions and progress"),
    ):
        p = add(name, func, help_)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("--url", help="the daemon's URL (default: from api.host and api.port)")
        if name == "jobs":
            p.add_argument(
                "--status",
                action="append",
                choices=STATUS_CHOICES,
                help="only jobs in this status (repeatable)",
            )
            p.add_argument("--model", help="only jobs of this model")
            p.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
        else:
            p.add_argument("job_id", metavar="JOB_ID")

    def with_client(func: Callable[[argparse.Namespace, Any], int]) -> Command:
        return lambda args: func(args, _daemon_client(args))

    for p in cli_actions.register(add, with_client):
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("--url", help="the daemon's URL (default: from api.host and api.port)")
    return parser


def _explain(exc: Exception, args: argparse.Namespace) -> str | None:
    """One line for an error the user can act on; None for a real bug (traceback)."""
    from batchwatch.errors import ApiError, ConfigError, StartupError

    if isinstance(exc, ConfigError | StartupError | UserError):
        return str(exc)
    if isinstance(exc, ApiError):
        return _explain_api_error(exc, getattr(args, "job_id", None))
    return None


def _explain_api_error(exc: ApiError, job_id: str | None) -> str:
    if exc.status_code is None:
        reason = exc.message.split(": ", 1)[-1]
        return f"cannot reach the batchwatch daemon ({reason}); is `batchwatch serve` running?"
    if exc.status_code == 401:
        return "the daemon refused the token: check api.token_file matches the daemon's"
    if exc.status_code == 422 and job_id:
        return f"{job_id!r} is not a valid job id: Mistral job ids are UUIDs"
    detail = exc.body.get("detail") if isinstance(exc.body, dict) else None
    if exc.status_code == 404 and job_id and detail and detail.startswith("no tracked job"):
        return f"{job_id} is not a tracked job (`batchwatch jobs` lists them)"
    if isinstance(detail, str):
        return detail  # the daemon's own explanation (a refused cancel, a reused key, ...)
    return exc.message


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        message = _explain(exc, args)
        if message is None:
            raise
        print(f"batchwatch: error: {_redact(message)}", file=sys.stderr)
        return EXIT_ERROR


def _redact(message: str) -> str:
    """Secrets are registered with ``batchwatch.logs`` by what loaded it (the daemon, the
    demo). A query command never does: it has none to hide, nor structlog to import."""
    logs = sys.modules.get("batchwatch.logs")
    return message if logs is None else str(logs.redact(message))
