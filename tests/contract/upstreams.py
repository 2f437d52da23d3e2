"""One driver per provider for the contract suite: its simulator, its client, and how a
test makes it a job (create bodies, simulator directives) in that provider's own terms.

Everything else of the suite speaks batchwatch's common records only, so one test runs
unchanged against the three APIs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from batchwatch.models import JobResults, ResultsState
from batchwatch.providers.anthropic.client import AnthropicClient
from batchwatch.providers.anthropic.schemas import CreateMessageBatchIn
from batchwatch.providers.base import CreateRequest, ProviderClient
from batchwatch.providers.mistral.client import MistralClient
from batchwatch.providers.mistral.schemas import CreateBatchJobIn
from batchwatch.providers.openai.client import OpenAIClient
from batchwatch.providers.openai.schemas import CreateBatchIn
from batchwatch.results.worker import ResultsOptions, ResultsWorker
from batchwatch.simulator.server import RunningSimulator, start_in_thread
from batchwatch.simulator.settings import SimulatorSettings
from batchwatch.store import Store
from batchwatch.store import results as stored

KEY = "contract-key"
PROVIDERS = ("mistral", "openai", "anthropic")


@dataclass
class Upstream:
    """A provider's simulator and a client of it."""

    name: str
    sim: RunningSimulator
    client: ProviderClient
    tmp: Path

    def requests_served(self) -> int:
        """Every ``/v1`` request the simulator answered since the last reset."""
        total: int = self.sim.simulation.stats()["total"]
        return total

    def reset_requests(self) -> None:
        self.sim.simulation.reset_stats()

    def create_request(
        self,
        n: int,
        *,
        failure_rate: float = 0.0,
        run_seconds: float = 0.6,
        **more: str,
    ) -> CreateRequest:
        """A create body of ``n`` chat requests, the simulator told to fail a fraction of
        them and to run for ``run_seconds`` (Mistral and OpenAI: an input file uploaded
        first); ``more``: other ``sim_*`` directives of the provider's simulator."""
        ids = [f"req-{i}" for i in range(n)]
        directives = {
            "sim_queue_seconds": "0.2",
            "sim_run_seconds": str(run_seconds),
            "sim_failure_rate": str(failure_rate),
            **more,
        }
        chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        if self.name == "anthropic":
            user_id = ";".join(f"{k}={v}" for k, v in directives.items())
            requests_: list[dict[str, Any]] = [
                {"custom_id": i, "params": {**chat, "max_tokens": 16}} for i in ids
            ]
            requests_[0]["params"]["metadata"] = {"user_id": user_id}
            return CreateMessageBatchIn.model_validate({"requests": requests_})
        if self.name == "openai":
            lines = [
                {"custom_id": i, "method": "POST", "url": "/v1/chat/completions", "body": chat}
                for i in ids
            ]
            assert isinstance(self.client, OpenAIClient)
            uploaded = self.client.upload_content("in.jsonl", _jsonl(lines), "batch")
            return CreateBatchIn.model_validate(
                {"input_file_id": uploaded["id"], "endpoint": "/v1/chat/completions",
                 "metadata": directives}
            )  # fmt: skip
        path = self.tmp / "in.jsonl"
        path.write_bytes(_jsonl([{"custom_id": i, "body": chat} for i in ids]))
        assert isinstance(self.client, MistralClient)
        uploaded_file = self.client.upload_file(path)
        return CreateBatchJobIn.model_validate(
            {"input_files": [uploaded_file.id], "endpoint": "/v1/chat/completions",
             "model": "m", "metadata": directives}
        )  # fmt: skip

    def control(self, method: str, path: str, **body: Any) -> Any:
        reply = requests.request(method, self.sim.url + path, json=body or None, timeout=10)
        reply.raise_for_status()
        return reply.json()


def _jsonl(objects: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


_CLIENTS: dict[str, Any] = {
    "mistral": MistralClient,
    "openai": OpenAIClient,
    "anthropic": AnthropicClient,
}


@contextmanager
def upstream(name: str, tmp: Path, **settings: Any) -> Iterator[Upstream]:
    """``name``'s simulator on loopback, short timings, and a client of it."""
    timings = {"queue_seconds": 0.2, "run_seconds": 0.6, "cancel_seconds": 0.3, **settings}
    sim = start_in_thread(SimulatorSettings(api_key=KEY, **timings), provider=name)
    client: ProviderClient = _CLIENTS[name](sim.url, KEY)
    try:
        yield Upstream(name, sim, client, tmp)
    finally:
        client.close()
        sim.stop()


def fetch_results(up: Upstream, store: Store, job_id: str, tmp: Path) -> JobResults:
    """One attempt of the results worker at ``job_id``, which must leave it ready."""
    worker = ResultsWorker(
        {up.name: up.client}, store, ResultsOptions(tmp / "results"), stop=threading.Event()
    )
    try:
        stored.queue_ended(store, datetime.now(UTC))
        assert worker.fetch(job_id) == "ready"
    finally:
        worker.shutdown()
    results = stored.job_results(store, job_id)
    assert results is not None and results.state is ResultsState.READY
    return results
