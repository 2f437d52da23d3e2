"""The simulator's settings: one frozen object, built by ``batchwatch simulate``, the demo or
a test, and passed to the simulation and the server."""

from __future__ import annotations

from dataclasses import dataclass

from batchwatch.simulator.faults import FaultRule


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    api_key: str | None = None  # when set, only this bearer key; else any non-empty one
    queue_seconds: float = 2.0
    run_seconds: float = 10.0
    cancel_seconds: float = 1.0
    latency_seconds: float = 0.0  # added to every /v1 response, for benchmarks
    faults: tuple[FaultRule, ...] = ()  # injected from the start (see ``faults``)
    fault_seed: int = 0
