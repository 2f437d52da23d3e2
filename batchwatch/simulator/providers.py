"""Which simulator serves which provider: each builds its simulation and its ASGI app from
the same ``SimulatorSettings``. A provider's simulator is imported only when it is asked for."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from fastapi import FastAPI

from batchwatch.simulator.settings import SimulatorSettings

#: provider -> the module whose ``build(settings)`` returns (simulation, app).
SIMULATORS: dict[str, str] = {
    "mistral": "batchwatch.simulator.app",
    "openai": "batchwatch.simulator.openai.app",
    "anthropic": "batchwatch.simulator.anthropic.app",
}


def build(provider: str, settings: SimulatorSettings) -> tuple[Any, FastAPI]:
    """``provider``'s simulation and the app serving it."""
    try:
        module = SIMULATORS[provider]
    except KeyError:
        raise ValueError(
            f"no simulator for provider {provider!r} (one of: {', '.join(SIMULATORS)})"
        ) from None
    simulation, app = import_module(module).build(settings)
    return simulation, app
