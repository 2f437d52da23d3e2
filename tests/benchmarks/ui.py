"""Figure 11: the dashboard's server time, with 100,000 jobs and 1,000,000 transitions stored
in SQLite (the history of figure 4, ``reads.py``'s data builder), measured in process with
Starlette's test client (the time of the request through the app: an upper bound of the
handler's, without the network).

The jobs page under several filters (status, model, metadata, created since, both orders,
a deep page), and the page of one job with 10,000 progress samples (its curve downsampled
to at most 500 points). Target: p95 <= 100 ms each.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from fastapi.testclient import TestClient
from sqlalchemy import insert

from batchwatch.api.app import create_app
from batchwatch.health import Health
from batchwatch.store import Store
from batchwatch.store.schema import progress
from tests.benchmarks.common import Context, Row, percentile, say
from tests.benchmarks.dataset import MODELS, History, generate
from tests.benchmarks.reads import JOBS, TRANSITIONS

TARGET_MS = 100.0
SAMPLES = 10_000
TOKEN = "bench-ui-token"
FILTERS: tuple[dict[str, str | list[str]], ...] = (
    {},
    {"status": "RUNNING"},
    {"status": ["SUCCESS", "FAILED"], "sort": "created"},
    {"model": MODELS[1]},
    {"status": "SUCCESS", "model": MODELS[0], "page_size": "100"},
    {"metadata": "team=search"},
    {"since": "2026-01-15"},
    {"page": "200"},
)


def _history(ctx: Context) -> History:
    if "reads" in ctx.shared:  # figure 4 built it already in this run
        found: History = ctx.shared["reads"].history
        return found
    if "ui-history" not in ctx.shared:
        say(f"  generating {JOBS:,} jobs and {TRANSITIONS:,} transitions in SQLite ...")
        ctx.shared["ui-history"] = generate(ctx.workdir / "ui.db", JOBS, TRANSITIONS)
    history: History = ctx.shared["ui-history"]
    return history


def _add_samples(store: Store, job_id: str) -> None:
    """10,000 progress samples of a job, a poll every 2 s, after those it has."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    total = 50_000
    rows = [
        {
            "job_id": job_id,
            "seq": 100_000 + k,
            "observed_at": start + timedelta(seconds=2 * k),
            "total_requests": total,
            "completed_requests": k * 4,
            "succeeded_requests": k * 4 - k // 10,
            "failed_requests": k // 10,
            "status": "RUNNING",
        }
        for k in range(SAMPLES)
    ]
    with store.write() as w:
        w.conn.execute(insert(progress), rows)


def _timed(client: TestClient, paths: list[str], rounds: int) -> list[float]:
    millis = []
    for _ in range(rounds):
        for path in paths:
            started = time.perf_counter()
            answer = client.get(path)
            millis.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, (path, answer.status_code)
    return millis


def _login(client: TestClient) -> None:
    form = client.get("/ui/login").text
    csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    answer = client.post("/ui/login", data={"token": TOKEN, "csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303


def figure(ctx: Context) -> list[Row]:
    history = _history(ctx)
    store = Store(history.url)
    try:
        job_id = random.Random(11).choice(history.ids)
        _add_samples(store, job_id)
        app = create_app(store, Health(5.0, datetime.now(UTC)), TOKEN)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            _login(client)
            jobs_paths = ["/ui/jobs?" + urlencode(f, doseq=True) for f in FILTERS]
            rounds = ctx.pick(25, 5)
            _timed(client, jobs_paths, 1)  # warm-up: statements compiled, pages cached
            jobs_ms = _timed(client, jobs_paths, rounds)
            job_path = f"/ui/jobs/{job_id}"
            _timed(client, [job_path], 3)
            job_ms = _timed(client, [job_path], ctx.pick(200, 40))
            size = len(client.get(job_path).content)
    finally:
        store.close()
    jobs_p95, job_p95 = percentile(jobs_ms, 95), percentile(job_ms, 95)
    say(f"  jobs page, {len(FILTERS)} filters x {rounds}: p95 {jobs_p95:.1f} ms")
    say(f"  job page, {SAMPLES:,} samples: p95 {job_p95:.1f} ms ({size / 1000:.0f} kB)")
    return [
        Row(
            f"11 dashboard /ui/jobs, {len(FILTERS)} filters, {JOBS:,} jobs: p95",
            f"{jobs_p95:.1f} ms",
            f"<= {TARGET_MS:.0f} ms",
            jobs_p95 <= TARGET_MS,
        ),
        Row(
            f"11 dashboard /ui/jobs/{{id}}, {SAMPLES:,} progress samples: p95",
            f"{job_p95:.1f} ms",
            f"<= {TARGET_MS:.0f} ms",
            job_p95 <= TARGET_MS,
        ),
    ]
