"""The CLI's action commands: create, submit, cancel, track, wait.

Each talks to the running daemon; create and submit send an Idempotency-Key of their own,
so their retries never start a second job.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchwatch.cli.batchfile import LineFormat, check_lines, describe, line_format
from batchwatch.cli.bodies import check_options, create_body
from batchwatch.cli.command import EXIT_JOB_NOT_SUCCESSFUL, EXIT_OK, Command
from batchwatch.cli.daemon_client import tracked_json
from batchwatch.cli.display import print_json, status_label
from batchwatch.errors import UserError
from batchwatch.models import API_ENDPOINTS, JobStatus
from batchwatch.providers import PROVIDERS

ENDPOINTS = API_ENDPOINTS


def _created(args: argparse.Namespace, job: Any) -> int:
    if args.json:
        print_json(tracked_json(job))
    else:
        print(job.id)
        print(
            f"created: {status_label(job)}; follow it with `batchwatch wait {job.id}`",
            file=sys.stderr,
        )
    return EXIT_OK


def _new_key() -> str:
    import uuid

    return str(uuid.uuid4())


def _checked_file(path: Path, fmt: LineFormat, keep: list[dict[str, Any]] | None = None) -> int:
    """The number of requests in ``path`` (``-``: standard input), in ``fmt``; a
    ``UserError`` after listing its problems when it has any."""
    try:
        if str(path) == "-":
            check = check_lines(sys.stdin.buffer, fmt, keep)
        else:
            with path.open("rb") as fh:
                check = check_lines(fh, fmt, keep)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    if not check.ok:
        print(describe(check, str(path)), file=sys.stderr)
        raise UserError(f"{path}: {len(check.problems)} problem(s); nothing was uploaded")
    return check.requests


def cmd_create(args: argparse.Namespace, client: Any) -> int:
    check_options(args)
    requests: list[dict[str, Any]] | None = None
    if args.requests is not None:
        requests = []
        _checked_file(Path(args.requests), line_format(args.provider), requests)
    body = create_body(args, tuple(args.input_file or ()), requests)
    key = args.idempotency_key or _new_key()
    return _created(args, client.create_once(body, key, provider=args.provider))


def cmd_submit(args: argparse.Namespace, client: Any) -> int:
    check_options(args)
    path = Path(args.file)
    fmt = line_format(args.provider, args.endpoint)
    key = args.idempotency_key or _new_key()
    if args.provider == "anthropic":  # no files API: the requests go in the create body
        requests: list[dict[str, Any]] = []
        _checked_file(path, fmt, requests)
        body = create_body(args, requests=requests)
        return _created(args, client.create_once(body, key, provider=args.provider))
    count = _checked_file(path, fmt)
    uploaded = client.upload_file(path, purpose="batch", provider=args.provider)
    print(f"uploaded {path.name}: {count} requests, file {uploaded.id}", file=sys.stderr)
    body = create_body(args, (uploaded.id,))
    return _created(args, client.create_once(body, key, provider=args.provider))


def _print_job(args: argparse.Namespace, job: Any, text: str) -> int:
    if args.json:
        print_json(tracked_json(job))
    else:
        print(text)
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, client: Any) -> int:
    job = client.cancel_job(args.job_id)
    return _print_job(args, job, f"{job.id}: {status_label(job)}")


def cmd_track(args: argparse.Namespace, client: Any) -> int:
    job = client.track(args.job_id)
    return _print_job(args, job, f"{job.id}: tracked, {status_label(job)}")


def cmd_wait(args: argparse.Namespace, client: Any) -> int:
    """A live progress bar until the job ends; exit 0 on SUCCESS, 3 on another ending."""
    from batchwatch.cli.waiting import WaitDisplay

    deadline = time.monotonic() + args.timeout if args.timeout else None
    job = client.get_job(args.job_id)
    with WaitDisplay(job, quiet=args.json) as display:
        while not job.status.is_terminal:
            if deadline is not None and time.monotonic() > deadline:
                raise UserError(
                    f"{args.job_id} is still {status_label(job)} after {args.timeout:g}s"
                    " (--timeout)"
                )
            time.sleep(args.interval)
            job = client.get_job(args.job_id)
            display.update(job)
    if args.json:
        print_json(tracked_json(job))
    # The common status: an OpenAI batch that ended well is "completed", an Anthropic one
    # "ended", and both are SUCCESS.
    return EXIT_OK if job.status is JobStatus.SUCCESS else EXIT_JOB_NOT_SUCCESSFUL


def _job_options(p: argparse.ArgumentParser) -> None:
    """The options ``create`` and ``submit`` share: the provider and the job's fields."""
    p.add_argument(
        "--provider",
        choices=PROVIDERS,
        default=PROVIDERS[0],
        help="whose batch API the job goes to (default mistral; the daemon must have its key)",
    )
    p.add_argument("--model", help="Mistral: e.g. mistral-small-latest (required)")
    p.add_argument(
        "--endpoint",
        metavar="ENDPOINT",
        help="e.g. /v1/chat/completions (Mistral, OpenAI; required there). Mistral: "
        + ", ".join(ENDPOINTS),
    )
    p.add_argument(
        "--metadata",
        action="append",
        metavar="KEY=VALUE",
        help="job metadata (repeatable; Mistral, OpenAI)",
    )
    p.add_argument(
        "--timeout-hours",
        type=int,
        default=None,
        metavar="H",
        help="Mistral: 1-168 (default 24); OpenAI: 24 only",
    )
    p.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="reuse to make a repeated command return the same job",
    )


def register(
    add: Callable[[str, Command, str], argparse.ArgumentParser],
    with_client: Callable[[Callable[[argparse.Namespace, Any], int]], Command],
) -> list[argparse.ArgumentParser]:
    """Adds the action subcommands; returns their parsers (the caller adds --url/--json)."""

    create = add(
        "create",
        with_client(cmd_create),
        "create a batch job from uploaded files, or from requests sent inline",
    )
    source = create.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input-file",
        action="extend",
        nargs="+",
        metavar="FILE_ID",
        help="uploaded files' ids: --input-file A B, or the option repeated (Mistral; "
        "OpenAI: exactly one)",
    )
    source.add_argument(
        "--requests",
        metavar="FILE.jsonl",
        help="send the file's request lines inline, '-' for standard input (Mistral; "
        "Anthropic's only way)",
    )
    _job_options(create)
    submit = add(
        "submit",
        with_client(cmd_submit),
        "check a JSONL file, upload it (Anthropic: send it inline) and create the job",
    )
    submit.add_argument("file", metavar="FILE.jsonl")
    _job_options(submit)
    cancel = add("cancel", with_client(cmd_cancel), "request a job's cancellation")
    cancel.add_argument("job_id", metavar="JOB_ID")
    track = add("track", with_client(cmd_track), "start tracking an existing job")
    track.add_argument("job_id", metavar="JOB_ID")
    wait = add(
        "wait",
        with_client(cmd_wait),
        "show a live progress bar until the job ends (exit 0 on SUCCESS, 3 otherwise)",
    )
    wait.add_argument("job_id", metavar="JOB_ID")
    wait.add_argument("--interval", type=float, default=1.0, help="seconds between reads")
    wait.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")
    return [create, submit, cancel, track, wait]
