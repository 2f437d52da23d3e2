"""``batchwatch demo``: the whole loop on a fresh machine, no API key needed.

Starts the three providers' simulators (Mistral, OpenAI, Anthropic) and one daemon tracking
them on a temporary database, submits a few Mistral jobs that end in different ways and one
batch of each other provider, shows them progressing live, prints each job's history and the
ledger of its requests, retries the failed requests of one, and exits 0.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from batchwatch import logs
from batchwatch.cli.daemon_client import LocalClient
from batchwatch.cli.display import console, jobs_table, status_label, transitions_table
from batchwatch.config import (
    ApiSettings,
    DatabaseSettings,
    LogSettings,
    Settings,
    TrackingSettings,
)
from batchwatch.config_providers import AnthropicSettings, MistralSettings, OpenAISettings
from batchwatch.daemon import Daemon
from batchwatch.models import RemoteJob
from batchwatch.providers import PROVIDERS, provider
from batchwatch.providers.anthropic.schemas import CreateMessageBatchIn
from batchwatch.providers.mistral.client import MistralClient
from batchwatch.providers.mistral.schemas import CreateBatchJobIn
from batchwatch.providers.openai.schemas import CreateBatchIn
from batchwatch.simulator.server import RunningSimulator, start_in_thread
from batchwatch.simulator.settings import SimulatorSettings

DEMO_KEY = "demo-key-not-secret"
CHAT = "/v1/chat/completions"
# (name, simulator directives): each job ends in its own way.
SCENARIOS: list[tuple[str, dict[str, str]]] = [
    ("translate-catalogue", {"sim_outcome": "SUCCESS", "sim_run_seconds": "6"}),
    (
        "summarise-tickets",
        {"sim_outcome": "SUCCESS", "sim_run_seconds": "8", "sim_failure_rate": "0.1"},
    ),
    ("classify-reviews", {"sim_outcome": "FAILED", "sim_run_seconds": "7"}),
    ("embed-archive", {"sim_outcome": "TIMEOUT_EXCEEDED", "sim_run_seconds": "9"}),
    ("cancel-me", {"sim_outcome": "SUCCESS", "sim_run_seconds": "30"}),
]
#: The other providers' batches, created through the daemon's routes in their own shapes
#: (`batchwatch submit --provider openai|anthropic` does the same): name, run seconds.
OPENAI_BATCH = ("openai-translations", "7")
ANTHROPIC_BATCH = ("anthropic-questions", "6")
CANCEL_AFTER_SECONDS = 3.0
DEADLINE_SECONDS = 45.0


def _question(n: int) -> dict[str, Any]:
    return {"max_tokens": 64, "messages": [{"role": "user", "content": f"Question number {n}?"}]}


def _requests_file(directory: Path, lines: int, openai: bool = False) -> Path:
    """Mistral's input lines, or OpenAI's (which name their method, url and model)."""
    path = directory / ("openai.jsonl" if openai else "requests.jsonl")
    with path.open("w", encoding="utf-8") as fh:
        for n in range(lines):
            line: dict[str, Any] = {"custom_id": str(n), "body": _question(n)}
            if openai:
                line["body"]["model"] = "gpt-4o-mini"
                line.update(method="POST", url=CHAT)
            fh.write(json.dumps(line) + "\n")
    return path


def _submit(local: LocalClient, upstream: MistralClient, workdir: Path, count: int) -> list[str]:
    """Even jobs go through batchwatch (`batchwatch submit` does the same); odd ones are
    created straight on Mistral, as another tool would, and batchwatch discovers them."""
    requests_file = _requests_file(workdir, 40)
    through_us = local.upload_file(requests_file, purpose="batch")
    elsewhere = upstream.upload_file(requests_file, purpose="batch")
    ids: list[str] = []
    for n in range(count):
        name, directives = SCENARIOS[n % len(SCENARIOS)]
        mine = n % 2 == 0
        request = CreateBatchJobIn.model_validate(
            {
                "endpoint": CHAT,
                "model": "mistral-small-latest",
                "input_files": ((through_us if mine else elsewhere).id,),
                "metadata": {
                    "job_name": name,
                    "created_via": "batchwatch" if mine else "elsewhere",
                    **directives,
                },
            }
        )
        job = (
            local.create_once(request.to_json(), f"demo-{n}")
            if mine
            else upstream.create_job(request)
        )
        ids.append(job.id)
    return ids


def _other_providers(local: LocalClient, workdir: Path) -> dict[str, str]:
    """One OpenAI batch (its file uploaded first) and one Anthropic batch (its requests
    inline), through the daemon's routes for each: their ids, with their names."""
    name, seconds = OPENAI_BATCH
    uploaded = local.upload_file(_requests_file(workdir, 30, openai=True), provider="openai")
    batch = CreateBatchIn.model_validate(
        {
            "input_file_id": uploaded.id,
            "endpoint": CHAT,
            "metadata": {"job_name": name, "sim_run_seconds": seconds},
        }
    )
    openai = local.create_once(batch.to_json(), "demo-openai", provider="openai")
    other, seconds = ANTHROPIC_BATCH
    # Anthropic has no batch metadata: the simulator reads its directives from the first
    # request's user id.
    first = {"metadata": {"user_id": f"sim_run_seconds={seconds}"}}
    lines: list[dict[str, Any]] = [
        {"custom_id": f"q{n}", "params": {"model": "claude-3-5-haiku-latest", **_question(n)}}
        for n in range(20)
    ]
    lines[0]["params"].update(first)
    inline = CreateMessageBatchIn.model_validate({"requests": lines})
    anthropic = local.create_once(inline.to_json(), "demo-anthropic", provider="anthropic")
    return {openai.id: name, anthropic.id: other}


def _watch(
    local: LocalClient, ids: list[str], names: dict[str, str], out: Console
) -> list[RemoteJob]:
    """Polls until every job has ended (or the deadline passes), cancelling ``cancel-me`` on
    the way; on a terminal a live table shows each read, elsewhere the final table alone."""
    started = time.monotonic()
    to_cancel = {job_id for job_id in ids if names.get(job_id) == "cancel-me"}
    shown: list[RemoteJob] = []
    title = "jobs as the daemon recorded them"
    # Off a terminal rich's Live prints its last frame without a line end, which runs the
    # table's closing border into whatever is printed next: print the table once instead.
    live = Live(jobs_table([], title, compact=True), console=out, refresh_per_second=8)
    with live if out.is_terminal else nullcontext():
        while time.monotonic() - started < DEADLINE_SECONDS:
            tracked = {job.id: job for job in local.list_tracked(limit=1000)}
            shown = [tracked[i] for i in ids if i in tracked]
            live.update(jobs_table(shown, title, compact=True, names=names))
            if time.monotonic() - started > CANCEL_AFTER_SECONDS and to_cancel:
                for job_id in to_cancel:
                    local.cancel_job(job_id)  # `batchwatch cancel` does the same
                to_cancel.clear()
            if len(shown) == len(ids) and all(job.status.is_terminal for job in shown):
                break
            time.sleep(0.25)
    if not out.is_terminal:
        out.print(jobs_table(shown, title, compact=True, names=names))
    return shown


def _print_histories(
    local: LocalClient, jobs: list[RemoteJob], names: dict[str, str], out: Console
) -> None:
    """Each job's transitions, under a title line of its own: as a table's title it would be
    wrapped to the table's width, splitting the job id off its name."""
    for job in jobs:
        name = names.get(job.id, "")
        samples = len(local.progress(job.id))
        title = Text(f"{name} ({job.id}): {samples} progress samples", style="bold")
        out.print(title, soft_wrap=not out.is_terminal)
        out.print(transitions_table(local.transitions(job.id), title=None))


def _results(local: LocalClient, job_id: str, seconds: float = 20.0) -> dict[str, Any]:
    """The job's results once fetched (ready or unavailable), or as they stand at the end."""
    deadline = time.monotonic() + seconds
    while True:
        found = local.results(job_id)
        if found["state"] in ("ready", "unavailable") or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def _show_results(
    local: LocalClient, jobs: list[RemoteJob], names: dict[str, str], out: Console
) -> None:
    """The ledger of each job: its requests by outcome, as downloaded at its end."""
    from rich.table import Table

    table = Table(title="results, downloaded at every end", header_style="bold")
    # (Fits 80 columns: a job whose results are not ready shows "-" counts.)
    for name in ("NAME", "STATUS", "OK", "FAILED", "NOT RUN", "TOKENS"):
        table.add_column(name, no_wrap=True)
    for job in jobs:
        found = _results(local, job.id)
        c, u = found.get("counts") or {}, found.get("usage") or {}
        table.add_row(
            names.get(job.id, job.id[:8]),
            status_label(job),
            *(str(c.get(k, "-")) for k in ("succeeded", "failed", "not_run")),
            f"{u['total_tokens']:,}" if u else "-",
        )
    out.print(table)


def _retry_one(local: LocalClient, jobs: list[RemoteJob], out: Console) -> None:
    """Retry the failed requests of the job that succeeded with failures, then show the
    merged outcome: one final result per request across the parent and its child."""
    from batchwatch.cli.results import merged

    parent = next(
        (j for j in jobs if (j.metadata or {}).get("job_name") == "summarise-tickets"), None
    )
    if parent is None or not (local.results(parent.id).get("counts") or {}).get("failed"):
        return
    child = local.retry(parent.id, ["failed", "not_run"])  # `batchwatch retry` does the same
    out.print(f"retried its failed requests: child job {child.id}", soft_wrap=True)
    deadline = time.monotonic() + 25
    while not local.get_job(child.id).status.is_terminal and time.monotonic() < deadline:
        time.sleep(0.25)
    _results(local, child.id)
    final = [row for _, row in merged(local, parent.id).values()]
    outcomes = {o: sum(r["outcome"] == o for r in final) for o in ("succeeded", "failed")}
    out.print(
        f"merged with its retry: {len(final)} requests, {outcomes['succeeded']} succeeded,"
        f" {outcomes['failed']} still failed (batchwatch results JOB --merged)",
        soft_wrap=True,
    )


def _events(local: LocalClient, out: Console) -> None:
    """What the event feed recorded meanwhile, by type (what webhooks and hooks are sent)."""
    found: dict[str, int] = {}
    after = 0
    while True:
        page = local.events(after, limit=1000)
        for event in page["data"]:
            found[event["type"]] = found.get(event["type"], 0) + 1
        if not page["data"]:
            break
        after = page["next_after"]
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(found.items()))
    out.print(f"events recorded: {kinds} (batchwatch events --follow)", soft_wrap=True)


def _settings(sims: dict[str, RunningSimulator], workdir: Path) -> Settings:
    """A daemon tracking the three simulators, on a database in ``workdir``."""
    return Settings(
        mistral=MistralSettings(server_url=sims["mistral"].url, api_key=DEMO_KEY),
        openai=OpenAISettings(server_url=sims["openai"].url, api_key=DEMO_KEY),
        anthropic=AnthropicSettings(server_url=sims["anthropic"].url, api_key=DEMO_KEY),
        tracking=TrackingSettings(poll_interval_seconds=0.5),
        database=DatabaseSettings(url=f"sqlite:///{workdir / 'batchwatch.db'}"),
        api=ApiSettings(port=0, token_file=workdir / "api-token"),
        log=LogSettings(level="warning"),
        state_dir=workdir,
    )


def _run(local: LocalClient, sims: dict[str, RunningSimulator], workdir: Path, jobs: int) -> int:
    out = console()
    with MistralClient(sims["mistral"].url, DEMO_KEY) as upstream:
        ids = _submit(local, upstream, workdir, jobs)
    names = {job_id: SCENARIOS[n % len(SCENARIOS)][0] for n, job_id in enumerate(ids)}
    others = _other_providers(local, workdir)
    names.update(others)
    out.print(
        f"submitted {len(ids)} Mistral jobs: {(len(ids) + 1) // 2} through batchwatch, the "
        "others straight to the simulator (batchwatch discovers those itself); and one "
        "OpenAI and one Anthropic batch through batchwatch"
    )
    every = [*ids, *others]
    final = _watch(local, every, names, out)
    _print_histories(local, final, names, out)
    _show_results(local, final, names, out)
    _retry_one(local, final, out)
    _events(local, out)
    ended = sum(job.status.is_terminal for job in final)
    out.print(f"{ended}/{len(every)} jobs ended; every transition above was recorded once.")
    return 0 if ended == len(every) else 1


def run_demo(jobs: int = 5, keep: bool = False) -> int:
    jobs = max(1, min(jobs, 20))
    workdir = Path(tempfile.mkdtemp(prefix="batchwatch-demo-"))
    logs.configure("warning", "console")
    sim_settings = SimulatorSettings(api_key=DEMO_KEY, queue_seconds=1.5)
    sims = {name: start_in_thread(sim_settings, provider=name) for name in PROVIDERS}
    daemon = Daemon(_settings(sims, workdir), threading.Event())
    out = console()
    try:
        daemon.start()
        where = ", ".join(f"{provider(name).label} {sim.url}" for name, sim in sims.items())
        out.print(
            f"[bold]batchwatch demo[/]: simulators {where}; daemon at {daemon.api_url}, "
            f"database {workdir / 'batchwatch.db'}"
        )
        token = (workdir / "api-token").read_text().strip()
        return _run(LocalClient(daemon.api_url, token, client_name="demo"), sims, workdir, jobs)
    finally:
        daemon.close()
        for sim in sims.values():
            sim.stop()
        if keep:
            out.print(f"database kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
