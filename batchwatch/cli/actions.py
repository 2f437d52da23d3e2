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

from batchwatch.cli.command import EXIT_JOB_NOT_SUCCESSFUL, EXIT_OK, Command
from batchwatch.cli.display import print_json
from batchwatch.errors import UserError
from batchwatch.models import API_ENDPOINTS

ENDPOINTS = API_ENDPOINTS


def _metadata(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise UserError(f"--metadata {pair!r}: expected KEY=VALUE, e.g. team=search")
        result[key] = value
    return result


def _request(args: argparse.Namespace, input_files: tuple[str, ...]) -> dict[str, Any]:
    """Mistral's create body as plain JSON: the daemon validates it (the CLI stays free of
    pydantic, which would cost it about 100 ms to import)."""
    body: dict[str, Any] = {
        "endpoint": args.endpoint,
        "input_files": list(input_files),
        "timeout_hours": args.timeout_hours,
    }
    if args.model is not None:
        body["model"] = args.model
    metadata = _metadata(args.metadata)
    if metadata:
        body["metadata"] = metadata
    return body


def _created(args: argparse.Namespace, job: Any) -> int:
    from batchwatch.providers.mistral.wire import job_to_json

    if args.json:
        print_json(job_to_json(job))
    else:
        print(job.id)
        print(
            f"created: {job.raw_status}; follow it with `batchwatch wait {job.id}`", file=sys.stderr
        )
    return EXIT_OK


def _new_key() -> str:
    import uuid

    return str(uuid.uuid4())


def cmd_create(args: argparse.Namespace, client: Any) -> int:
    request = _request(args, tuple(args.input_file))
    key = args.idempotency_key or _new_key()
    return _created(args, client.create_once(request, key))


def cmd_submit(args: argparse.Namespace, client: Any) -> int:
    from batchwatch.cli.batchfile import check_lines, describe

    path = Path(args.file)
    try:
        with path.open("rb") as fh:
            check = check_lines(fh)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    if not check.ok:
        print(describe(check, str(path)), file=sys.stderr)
        raise UserError(f"{path}: {len(check.problems)} problem(s); nothing was uploaded")
    request = _request(args, ())  # validate --metadata before uploading anything
    uploaded = client.upload_file(path, purpose="batch")
    print(f"uploaded {path.name}: {check.requests} requests, file {uploaded.id}", file=sys.stderr)
    key = args.idempotency_key or _new_key()
    return _created(args, client.create_once({**request, "input_files": [uploaded.id]}, key))


def _print_job(args: argparse.Namespace, job: Any, text: str) -> int:
    if args.json:
        from batchwatch.providers.mistral.wire import job_to_json

        print_json(job_to_json(job))
    else:
        print(text)
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, client: Any) -> int:
    job = client.cancel_job(args.job_id)
    return _print_job(args, job, f"{job.id}: {job.raw_status}")


def cmd_track(args: argparse.Namespace, client: Any) -> int:
    job = client.track(args.job_id)
    return _print_job(args, job, f"{job.id}: tracked, {job.raw_status}")


def cmd_wait(args: argparse.Namespace, client: Any) -> int:
    """A live progress bar until the job ends; exit 0 on SUCCESS, 3 on another ending."""
    from batchwatch.cli.display import WaitDisplay

    deadline = time.monotonic() + args.timeout if args.timeout else None
    job = client.get_job(args.job_id)
    with WaitDisplay(job, quiet=args.json) as display:
        while not job.status.is_terminal:
            if deadline is not None and time.monotonic() > deadline:
                raise UserError(
                    f"{args.job_id} is still {job.raw_status} after {args.timeout:g}s (--timeout)"
                )
            time.sleep(args.interval)
            job = client.get_job(args.job_id)
            display.update(job)
    if args.json:
        from batchwatch.providers.mistral.wire import job_to_json

        print_json(job_to_json(job))
    return EXIT_OK if job.raw_status == "SUCCESS" else EXIT_JOB_NOT_SUCCESSFUL


def register(
    add: Callable[[str, Command, str], argparse.ArgumentParser],
    with_client: Callable[[Callable[[argparse.Namespace, Any], int]], Command],
) -> list[argparse.ArgumentParser]:
    """Adds the action subcommands; returns their parsers (the caller adds --url/--json)."""

    def job_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", required=True, help="e.g. mistral-small-latest")
        p.add_argument(
            "--endpoint",
            required=True,
            choices=ENDPOINTS,
            metavar="ENDPOINT",
            help="e.g. /v1/chat/completions",
        )
        p.add_argument(
            "--metadata", action="append", metavar="KEY=VALUE", help="job metadata (repeatable)"
        )
        p.add_argument(
            "--timeout-hours", type=int, default=24, metavar="H", help="1-168 (default 24)"
        )
        p.add_argument(
            "--idempotency-key",
            metavar="KEY",
            help="reuse to make a repeated command return the same job",
        )

    create = add("create", with_client(cmd_create), "create a batch job from uploaded files")
    create.add_argument(
        "--input-file",
        action="extend",
        nargs="+",
        required=True,
        metavar="FILE_ID",
        help="uploaded files' ids: --input-file A B, or the option repeated",
    )
    job_options(create)
    submit = add(
        "submit", with_client(cmd_submit), "check a JSONL file, upload it and create the job"
    )
    submit.add_argument("file", metavar="FILE.jsonl")
    job_options(submit)
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
