"""Each provider's client class, imported only when a daemon or a command needs it (each
pulls in requests)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from batchwatch.providers import provider

_CLASSES = {
    "mistral": ("batchwatch.providers.mistral.client", "MistralClient"),
    "openai": ("batchwatch.providers.openai.client", "OpenAIClient"),
    "anthropic": ("batchwatch.providers.anthropic.client", "AnthropicClient"),
}


def client_class(name: str) -> Any:
    """The client class of provider ``name`` (an ``HttpApi`` and a ``ProviderClient``)."""
    provider(name)  # an unknown name: the catalog's error
    module, cls = _CLASSES[name]
    return getattr(import_module(module), cls)
