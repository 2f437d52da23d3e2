"""The ``batchwatch`` command: one parser, and one place that turns errors into a clear
line and an exit code. The subcommands live by kind: ``queries`` (jobs, show), ``actions``
(create, submit, cancel, track, wait), ``results`` and ``events`` (events, webhooks) ask
the running daemon; ``service`` (serve, poll, migrate, config check, simulate, demo) runs
batchwatch itself.

Heavy modules are imported inside the subcommands that use them, so a query command
starts fast: the commands that talk to the daemon read their settings with the standard
library (``config.load_client_settings``, not pydantic), speak HTTP with ``http.client``
(``daemon_client``, not requests), and ``jobs`` off a terminal prints a plain table (not
rich). FastAPI, SQLAlchemy, structlog and pydantic are for the service commands.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from batchwatch import __version__
from batchwatch.cli import actions, events, queries, results, service
from batchwatch.cli.command import (
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    Command,
    add_client_options,
    with_client,
)
from batchwatch.errors import UserError
from batchwatch.providers.bodies import error_text

if TYPE_CHECKING:
    from batchwatch.errors import ApiError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchwatch",
        description="Track batch jobs of Mistral, OpenAI and Anthropic, and keep every status "
        "change they go through.",
    )
    parser.add_argument("--version", action="version", version=f"batchwatch {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML config file (default: $BATCHWATCH_CONFIG, ./batchwatch.toml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Command, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    service.register(add)
    queries.register(add)
    results.register(add)
    events.register(add)
    for p in actions.register(add, with_client):
        add_client_options(p)
    return parser


def _explain(exc: Exception, args: argparse.Namespace) -> str | None:
    """One line for an error the user can act on; None for a real bug (traceback)."""
    from batchwatch.errors import ApiError, ConfigError, StartupError, StoreUnavailable

    if isinstance(exc, ConfigError | StartupError | StoreUnavailable | UserError):
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
        return (
            f"{job_id!r} is not a valid job id: Mistral's are UUIDs, OpenAI's batch_..., "
            "Anthropic's msgbatch_..."
        )
    detail = exc.body.get("detail") if isinstance(exc.body, dict) else None
    if exc.status_code == 404 and job_id and detail and detail.startswith("no tracked job"):
        return f"{job_id} is not a tracked job (`batchwatch jobs` lists them)"
    # The daemon's own explanation (a refused cancel, a reused key, a provider it has no
    # key for), as FastAPI's ``detail`` or, on a provider's own routes, in that provider's
    # error shape.
    return error_text(exc.body) or exc.message


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, so a closed pipe is met inside the funnel, not at exit
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`batchwatch results JOB | head`): not an error worth a
        # traceback. Output still buffered for it goes nowhere instead of failing at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        message = _explain(exc, args)
        if message is None:
            raise
        print(f"batchwatch: error: {_redact(message)}", file=sys.stderr)
        return EXIT_ERROR


def _redact(message: str) -> str:
    """Secrets are registered with ``batchwatch.logs`` by what loaded it (the daemon, the
    demo, ``poll``). A query command never does: it has none to hide, nor structlog to
    import."""
    logs = sys.modules.get("batchwatch.logs")
    return message if logs is None else str(logs.redact(message))
