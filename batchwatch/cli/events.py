"""The CLI's event commands: ``events`` (the feed; with ``--follow``, every event as it
happens, across restarts of the daemon) and ``webhooks`` (each endpoint's deliveries, and a
redelivery), all through the running daemon."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from batchwatch.cli.command import EXIT_OK, AddCommand, add_client_options, daemon_client
from batchwatch.cli.daemon_client import LocalClient
from batchwatch.cli.display import print_json
from batchwatch.errors import ApiError
from batchwatch.events import EVENT_TYPES

#: Without --after, ``events`` starts this many events before the newest.
RECENT = 50
#: Events read per request.
PAGE = 1000
#: Seconds the daemon holds each request of ``--follow`` when nothing happens.
FOLLOW_WAIT = 30.0
#: Seconds between two attempts to reach a daemon that went away.
RECONNECT_SECONDS = 1.0


def cmd_events(args: argparse.Namespace) -> int:
    client = daemon_client(args)
    types: list[str] = args.type or []
    after = args.after if args.after is not None else _recent(client)
    after = _print_until_caught_up(client, after, types, args.json)
    if args.follow:
        _follow(client, after, types, args.json)
    return EXIT_OK


def _recent(client: LocalClient) -> int:
    newest = int(client.events(0, limit=1)["newest_seq"])
    return max(0, newest - RECENT)


def _print_until_caught_up(
    client: LocalClient, after: int, types: Sequence[str], as_json: bool
) -> int:
    """Print every event after ``after`` recorded so far; returns the last seq printed (or
    ``after``)."""
    while True:
        body = client.events(after, types, PAGE)
        _print_events(body["data"], as_json)
        after = int(body["next_after"])
        if len(body["data"]) < PAGE:
            return after


def _follow(client: LocalClient, after: int, types: Sequence[str], as_json: bool) -> None:
    """Long-poll forever, printing each event once: a request that fails because the daemon
    is away (restarting) is repeated after the last seq printed, so nothing is lost or
    printed twice. Only a refusal that retrying cannot cure (a wrong token) ends it."""
    away = False
    while True:
        try:
            body = client.events(after, types, PAGE, wait=FOLLOW_WAIT)
        except ApiError as exc:
            if not exc.retryable:
                raise
            if not away:
                print(f"batchwatch: {_reason(exc)}; retrying", file=sys.stderr, flush=True)
                away = True
            time.sleep(RECONNECT_SECONDS)
            continue
        if away:
            print(f"batchwatch: reconnected, after event {after}", file=sys.stderr, flush=True)
            away = False
        _print_events(body["data"], as_json)
        after = int(body["next_after"])


def _reason(exc: ApiError) -> str:
    if exc.status_code is None:
        return "lost the daemon (" + exc.message.split(": ", 1)[-1] + ")"
    return f"the daemon answered HTTP {exc.status_code}"


def _print_events(found: Sequence[dict[str, Any]], as_json: bool) -> None:
    for event in found:
        # Flushed each time: a reader at the other end of a pipe sees each event as it comes.
        print(json.dumps(event) if as_json else event_line(event), flush=True)


def event_line(event: dict[str, Any]) -> str:
    """``2026-01-31 12:00:01  job.finished  <job id>  SUCCESS, 10 of 10 succeeded``."""
    at = datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))
    when = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    line = f"{when}  {event['type']:<18} {event['job_id']}"
    summary = event_summary(event["type"], event.get("data") or {})
    return f"{line}  {summary}" if summary else line


def event_summary(type_: str, data: dict[str, Any]) -> str:
    """What the event says, in a few words."""
    if type_ == "job.transitioned":
        return f"{data.get('from_status') or '(new)'} -> {data.get('to_status')}"
    if type_ in ("job.finished", "job.results_ready"):
        counts = data.get("requests") or {}
        status = data.get("status")
        done = failed = ""
        if counts:
            done = f"{counts.get('succeeded', 0)} of {counts.get('total', 0)} succeeded"
            failed = f"{counts['failed']} failed" if counts.get("failed") else ""
        return ", ".join(part for part in (status, done, failed) if part)
    if type_ == "job.stalled":
        why = "queued too long" if data.get("reason") == "queued" else "no progress"
        return f"{why} since {data.get('since')}"
    if type_ == "job.deadline_near":
        return f"{data.get('requests_left')} requests left, deadline {data.get('deadline')}"
    return ""


def cmd_webhooks(args: argparse.Namespace) -> int:
    rows = daemon_client(args).webhooks()
    if args.json:
        print_json(rows)
        return EXIT_OK
    if not rows:
        print("no webhooks or hooks: add [[webhooks]] or [[hooks]] to the config")
        return EXIT_OK
    print(f"{'KIND':<8} {'PENDING':>8} {'DELIVERED':>10} {'DEAD':>6}  {'DISABLED':<20}  ENDPOINT")
    for r in rows:
        disabled = (r["disabled_at"] or "-")[:19].replace("T", " ")
        print(
            f"{r['kind']:<8} {r['pending']:>8,} {r['delivered']:>10,} {r['dead']:>6,}"
            f"  {disabled:<20}  {r['name']}"
        )
        if r["disabled_reason"]:
            print(f"{'':<8} disabled: {r['disabled_reason']}")
    return EXIT_OK


def cmd_redeliver(args: argparse.Namespace) -> int:
    answer = daemon_client(args).redeliver(args.event_id)
    if args.json:
        print_json(answer)
    else:
        n = answer["deliveries"]
        print(f"event {args.event_id} will be delivered again to {n} endpoint{'s' * (n != 1)}")
    return EXIT_OK


def _seq(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an event seq (0, 1, 2, ...)")
    return value


def register(add: AddCommand) -> None:
    events = add("events", cmd_events, "events as they were recorded; --follow for new ones")
    add_client_options(events)
    events.add_argument(
        "--follow", "-f", action="store_true", help="keep printing events as they happen"
    )
    events.add_argument(
        "--type", action="append", choices=EVENT_TYPES, help="only this type (repeatable)"
    )
    events.add_argument(
        "--after",
        type=_seq,
        metavar="SEQ",
        help=f"the events after this seq (default: those among the last {RECENT} recorded)",
    )
    webhooks = add("webhooks", cmd_webhooks, "each webhook and hook: its deliveries by state")
    add_client_options(webhooks)
    actions = webhooks.add_subparsers(dest="webhooks_command", metavar="ACTION")
    # No defaults of its own: an option given before the action (`webhooks --json
    # redeliver ID`) would be overwritten by them.
    redeliver = actions.add_parser(
        "redeliver",
        help="send an event again to the endpoints that took it",
        argument_default=argparse.SUPPRESS,
    )
    redeliver.set_defaults(func=cmd_redeliver)
    add_client_options(redeliver)
    redeliver.add_argument("event_id", metavar="EVENT_ID")
