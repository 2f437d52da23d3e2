"""The CLI's results commands: ``results`` (the ledger, merged across retries), ``retry``,
``delete`` and ``usage``, all through the running daemon."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchwatch.cli.command import EXIT_OK, AddCommand, add_client_options, daemon_client
from batchwatch.cli.daemon_client import LocalClient
from batchwatch.cli.display import print_json
from batchwatch.errors import UserError

if TYPE_CHECKING:
    from rich.text import Text

OUTCOMES = ("succeeded", "failed", "not_run")
#: The ledger is read a page at a time; one page of this many rows.
PAGE = 1000


def _ledger(client: LocalClient, job_id: str, outcomes: list[str]) -> Iterator[dict[str, Any]]:
    page = 0
    while True:
        rows, total = client.requests(job_id, outcomes, page, PAGE)
        yield from rows
        page += 1
        if not rows or page * PAGE >= total:
            return


def lineage(client: LocalClient, job_id: str) -> list[str]:
    """``job_id`` and every job its retries made, generation by generation (oldest first)."""
    found, frontier = [job_id], [job_id]
    while frontier:
        children = [c for parent in frontier for c in client.children(parent)]
        frontier = [c.id for c in sorted(children, key=lambda c: c.created_at) if c.id not in found]
        found += frontier
    return found


def merged(client: LocalClient, job_id: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """One final row per custom id across the lineage: a retry's row replaces its parent's."""
    final: dict[str, tuple[str, dict[str, Any]]] = {}
    for job in lineage(client, job_id):
        for row in _ledger(client, job, []):
            if row["custom_id"] is not None and not row.get("duplicate"):
                final[row["custom_id"]] = (job, row)
    return final


def cmd_results(args: argparse.Namespace) -> int:
    client = daemon_client(args)
    summary = client.results(args.job_id)
    wanted = _outcomes(args.outcome)
    if args.merged:
        final = merged(client, args.job_id)
        rows = [dict(row, job_id=job) for job, row in final.values()]
        rows = [r for r in rows if not wanted or r["outcome"] in wanted]
        summary = {**summary, "merged": _counts(row for _, row in final.values())}
    else:
        rows = [dict(row, job_id=args.job_id) for row in _ledger(client, args.job_id, wanted)]
    if args.output:
        written = _write_responses(client, args.job_id, rows, Path(args.output))
        print(f"wrote {written} responses to {args.output}", file=sys.stderr)
    if args.json:
        print_json({"results": summary, "requests": rows})
        return EXIT_OK
    print(_summary_text(summary))
    shown = rows if wanted or args.merged else [r for r in rows if r["outcome"] != "succeeded"]
    if shown:
        print(_rows_table(shown))
    return EXIT_OK


def _outcomes(given: list[str] | None) -> list[str]:
    found = [o for text in given or () for o in text.split(",") if o]
    for outcome in found:
        if outcome not in OUTCOMES:
            raise UserError(f"--outcome: {outcome!r} is not one of {', '.join(OUTCOMES)}")
    return found


def _counts(rows: Iterator[dict[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(("total", *OUTCOMES), 0)
    for row in rows:
        counts["total"] += 1
        counts[row["outcome"]] += 1
    return counts


def _summary_text(summary: dict[str, Any]) -> str:
    lines = [f"job {summary['job_id']}: results {summary['state']}"]
    if summary.get("reason"):
        lines[0] += f" ({summary['reason']})"
    for title, counts in (("requests", summary.get("counts")), ("merged", summary.get("merged"))):
        if counts:
            lines.append(
                f"{title}: {counts['total']:,} total, {counts['succeeded']:,} succeeded,"
                f" {counts['failed']:,} failed, {counts['not_run']:,} not run"
            )
    if summary.get("usage"):
        u = summary["usage"]
        lines.append(
            f"tokens: {u['prompt_tokens']:,} prompt, {u['completion_tokens']:,} completion,"
            f" {u['total_tokens']:,} total"
        )
    for f in summary.get("files") or []:
        lines.append(f"  {f['kind']:<7} {f['bytes']:>12,} bytes  {f['sha256'][:12]}  {f['path']}")
    return "\n".join(lines)


def _rows_table(rows: list[dict[str, Any]]) -> str:
    out = [f"{'CUSTOM_ID':<24} {'OUTCOME':<10} {'STATUS':>6}  ERROR"]
    for row in rows:
        error = row.get("error") or {}
        message = error.get("message") or (row.get("raw") or "")[:60]
        status = "" if row["status_code"] is None else str(row["status_code"])
        custom_id = row["custom_id"] if row["custom_id"] is not None else "(unreadable)"
        out.append(f"{custom_id:<24} {row['outcome']:<10} {status:>6}  {message}")
    return "\n".join(out)


def _write_responses(client: LocalClient, root: str, rows: list[dict[str, Any]], dest: Path) -> int:
    """The result lines of ``rows``, as they are in the downloaded files, into ``dest``."""
    by_job: dict[str, set[str]] = {}
    for row in rows:
        if row["custom_id"] is not None and row["outcome"] != "not_run":
            by_job.setdefault(row["job_id"], set()).add(row["custom_id"])
    written = 0
    with dest.open("wb") as sink:
        for job_id, ids in by_job.items():
            files = client.results(job_id).get("files") or []
            for f in files:
                if f["kind"] in ("output", "error"):
                    written += _copy_lines(Path(f["path"]), ids, sink)
    return written


def _copy_lines(path: Path, ids: set[str], sink: Any) -> int:
    try:
        source = path.open("rb")
    except OSError as exc:
        raise UserError(
            f"cannot read {path}: {exc.strerror} (results are on the daemon's disk)"
        ) from None
    copied = 0
    with source:
        for line in source:
            try:
                custom_id = json.loads(line).get("custom_id")
            except (ValueError, AttributeError):
                continue
            if custom_id in ids:
                sink.write(line if line.endswith(b"\n") else line + b"\n")
                ids.discard(custom_id)
                copied += 1
    return copied


def results_text(results: dict[str, Any]) -> Text:
    """The results' state, and once ready the outcome of the requests: a SUCCESS job whose
    requests failed stands out in red."""
    from rich.text import Text

    text = Text(results["state"])
    counts = results.get("counts")
    if counts:
        text.append(f": {counts['succeeded']} succeeded")
        if counts["failed"]:
            text.append(f", {counts['failed']} failed", style="red")
        if counts["not_run"]:
            text.append(f", {counts['not_run']} not run", style="yellow")
        text.append("  (batchwatch results JOB_ID)", style="dim")
    elif results.get("reason"):
        text.append(f" ({results['reason']})", style="dim")
    return text


def cmd_retry(args: argparse.Namespace) -> int:
    client = daemon_client(args)
    child = client.retry(args.job_id, _outcomes([args.only]), args.idempotency_key)
    if args.json:
        from batchwatch.cli.daemon_client import tracked_json

        print_json(tracked_json(child))
    else:
        print(child.id)
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    answer = daemon_client(args).delete(args.job_id, force=args.force)
    if args.json:
        print_json(answer)
    else:
        print(f"deleted {args.job_id} upstream; its history and files are kept here")
    return EXIT_OK


_AGO = re.compile(r"^(\d+)([dhm])$")


def since_time(text: str) -> str:
    """``7d``, ``24h``, ``30m`` or an RFC 3339 time, as RFC 3339."""
    found = _AGO.match(text)
    if found:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[found.group(2)]
        at = datetime.now(UTC) - timedelta(**{unit: int(found.group(1))})
        return at.isoformat().replace("+00:00", "Z")
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"--since: {text!r} is neither like 7d, 24h, 30m nor a time") from None
    return text


def cmd_usage(args: argparse.Namespace) -> int:
    group = None
    if args.by.startswith("tag:"):
        group = f"metadata.{args.by.removeprefix('tag:')}"
    elif args.by != "model":
        raise UserError(f"--by: {args.by!r}: use model or tag:KEY")
    rows = daemon_client(args).usage(since_time(args.since) if args.since else None, group)
    if args.json:
        print_json(rows)
        return EXIT_OK
    header = (
        f"{'KEY':<28} {'JOBS':>6} {'REQUESTS':>10} {'PROMPT':>12} {'COMPLETION':>12} {'COST':>10}"
    )
    print(header)
    for r in rows:
        cost = "-" if r["cost"] is None else f"{r['cost']:.4f}"
        print(
            f"{r['key'] or '(none)':<28} {r['jobs']:>6,} {r['requests']:>10,}"
            f" {r['prompt_tokens']:>12,} {r['completion_tokens']:>12,} {cost:>10}"
        )
    return EXIT_OK


def register(add: AddCommand) -> None:
    results = add("results", cmd_results, "a job's results: files, counts and the request ledger")
    add_client_options(results)
    results.add_argument("job_id", metavar="JOB_ID")
    results.add_argument(
        "--outcome", action="append", help="only these outcomes (succeeded, failed, not_run)"
    )
    results.add_argument(
        "--merged", action="store_true", help="follow retries: one final result per custom_id"
    )
    results.add_argument("--output", metavar="FILE", help="write the result lines as JSONL")
    retry = add("retry", cmd_retry, "run a job's failed and unrun requests again, as a child job")
    add_client_options(retry)
    retry.add_argument("job_id", metavar="JOB_ID")
    retry.add_argument(
        "--only", default="failed,not_run", help="outcomes to retry (default: %(default)s)"
    )
    retry.add_argument("--idempotency-key", help="the same key returns the same child job")
    delete = add("delete", cmd_delete, "delete an ended job upstream, keeping everything here")
    add_client_options(delete)
    delete.add_argument("job_id", metavar="JOB_ID")
    delete.add_argument(
        "--force", action="store_true", help="even if its results are not downloaded"
    )
    usage = add("usage", cmd_usage, "token totals (and cost, with [prices] configured)")
    add_client_options(usage)
    usage.add_argument("--since", help="only jobs whose results came after: 7d, 24h, or a time")
    usage.add_argument("--by", default="model", help="model (default) or tag:KEY")
