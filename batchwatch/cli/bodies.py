"""What ``create`` and ``submit`` send for each provider: the create body in that provider's
own shape, built from the options as plain JSON (the daemon validates it: the CLI stays free
of pydantic, which would cost it about 100 ms to import).

An option the provider has no place for is refused here, in one line saying why, before
anything is uploaded or created: silently dropping ``--model`` from an OpenAI batch would
create a different job than the one asked for.
"""

from __future__ import annotations

import argparse
from typing import Any

from batchwatch.errors import UserError
from batchwatch.models import API_ENDPOINTS
from batchwatch.providers import provider as catalog

#: OpenAI's only completion window; ``--timeout-hours`` may say nothing else for it.
OPENAI_WINDOW_HOURS = 24
#: Mistral's default timeout, when ``--timeout-hours`` is not given.
MISTRAL_TIMEOUT_HOURS = 24


def metadata(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise UserError(f"--metadata {pair!r}: expected KEY=VALUE, e.g. team=search")
        result[key] = value
    return result


def _refuse(args: argparse.Namespace, option: str, why: str) -> None:
    """A ``UserError`` when ``option`` was given for a provider that has no place for it."""
    if getattr(args, option.lstrip("-").replace("-", "_"), None) is not None:
        label = catalog(args.provider).label
        raise UserError(f"{option}: {label} batches {why}")


def check_options(args: argparse.Namespace) -> None:
    """Refuse what ``args.provider`` cannot take (see the module)."""
    if args.provider == "mistral":
        if args.model is None:
            raise UserError("--model is required for a Mistral job, e.g. mistral-small-latest")
        _check_endpoint(args.endpoint, API_ENDPOINTS)
    elif args.provider == "openai":
        _refuse(args, "--model", "take the model from each request line's body")
        _refuse(args, "--requests", "read their requests from an uploaded file (--input-file)")
        if args.timeout_hours not in (None, OPENAI_WINDOW_HOURS):
            raise UserError("--timeout-hours: OpenAI batches have a 24-hour completion window")
        _check_endpoint(args.endpoint, None)
        if len(getattr(args, "input_file", None) or ()) > 1:
            raise UserError("--input-file: an OpenAI batch reads exactly one input file")
    else:
        _refuse(args, "--model", "take the model from each request's params")
        _refuse(args, "--endpoint", "always go to /v1/messages")
        _refuse(args, "--metadata", "have no metadata")
        _refuse(args, "--timeout-hours", "end within 24 hours, as Anthropic decides")
        _refuse(args, "--input-file", "carry their requests inline (--requests FILE.jsonl)")
    metadata(args.metadata)  # a malformed pair is refused before anything is sent


def _check_endpoint(endpoint: str | None, choices: tuple[str, ...] | None) -> None:
    """OpenAI's endpoints are checked by the daemon (its create model lists them, in a
    pydantic module the CLI does not load); Mistral's are a plain tuple, checked here."""
    if endpoint is None:
        raise UserError("--endpoint is required, e.g. --endpoint /v1/chat/completions")
    if choices is not None and endpoint not in choices:
        raise UserError(f"--endpoint {endpoint!r}: one of {', '.join(choices)}")


def create_body(
    args: argparse.Namespace,
    input_files: tuple[str, ...] = (),
    requests: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``args.provider``'s create body from the checked options, the uploaded files' ids or
    the requests read from a file (sent inline)."""
    if args.provider == "anthropic":
        return {"requests": requests or []}
    found = metadata(args.metadata)
    if args.provider == "openai":
        body: dict[str, Any] = {
            "input_file_id": input_files[0] if input_files else "",
            "endpoint": args.endpoint,
            "completion_window": f"{OPENAI_WINDOW_HOURS}h",
        }
    else:
        body = {
            "endpoint": args.endpoint,
            "model": args.model,
            "timeout_hours": args.timeout_hours or MISTRAL_TIMEOUT_HOURS,
        }
        body.update({"requests": requests} if requests else {"input_files": list(input_files)})
    if found:
        body["metadata"] = found
    return body
