"""What every subcommand module shares: the exit codes, the shape of a subcommand, and the
daemon it talks to (from ``--config`` and ``--url``).

``main`` imports the command modules and they import this, never ``main``: the parser and
the error funnel sit on top, the commands below them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from batchwatch.errors import UserError

if TYPE_CHECKING:
    from batchwatch.cli.daemon_client import LocalClient

EXIT_OK = 0
#: One line on stderr says why (``main``'s error funnel).
EXIT_ERROR = 1
# 2 is a usage error: argparse exits with it itself.
#: `batchwatch wait`: the job ended, in another status than SUCCESS.
EXIT_JOB_NOT_SUCCESSFUL = 3
EXIT_INTERRUPTED = 130
#: The command's output went to a pipe whose reader closed it (128 + SIGPIPE, as a shell has it).
EXIT_BROKEN_PIPE = 141

#: A subcommand: its parsed arguments in, its exit code out.
Command = Callable[[argparse.Namespace], int]
#: ``add(name, command, help)``: a subcommand's parser, with the command set as its func.
AddCommand = Callable[[str, Command, str], argparse.ArgumentParser]
#: A command of the running daemon's local API.
ClientCommand = Callable[[argparse.Namespace, "LocalClient"], int]


def daemon_client(args: argparse.Namespace) -> LocalClient:
    """The client of the daemon named by ``--url``, else by the settings' api host and port,
    with the token the daemon wrote. Standard library only: see ``cli.main``."""
    from batchwatch.cli.daemon_client import LocalClient
    from batchwatch.config import load_client_settings
    from batchwatch.tokens import read_token

    settings = load_client_settings(args.config)
    url = args.url or settings.api_url
    try:
        return LocalClient(url, read_token(settings.token_file))
    except ValueError as exc:
        raise UserError(f"--url: {exc}") from None


def with_client(func: ClientCommand) -> Command:
    """``func`` as a subcommand: called with the arguments and the daemon's client."""
    return lambda args: func(args, daemon_client(args))


def add_client_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command that talks to the daemon."""
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--url", help="the daemon's URL (default: from api.host and api.port)")
