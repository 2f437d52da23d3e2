"""The batch APIs batchwatch tracks. Each provider is a package here, the only code that
knows its JSON (``wire``) and speaks HTTP to it (``client``); its ``statuses`` module says,
without I/O, how its statuses map onto batchwatch's common ones.

This module is the catalog: which providers exist and what the rest of batchwatch may know
of each (names, statuses' order, whether counts move while a job runs), read by the pure
core, the CLI and the dashboard. Adding a provider: a package with ``statuses``, ``wire``
and ``client``, a simulator under ``batchwatch/simulator/``, and one entry in ``_MODULES``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from types import MappingProxyType

from batchwatch.models import JobStatus, RemoteJob

#: Every provider's name, Mistral first (the default wherever a provider is optional).
PROVIDERS: tuple[str, ...] = ("mistral", "openai", "anthropic")


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    label: str
    #: Each status the provider sends, with the common status it maps to (None: it depends
    #: on the job, as Anthropic's ``ended`` does; ``wire`` resolves it).
    statuses: Mapping[str, JobStatus | None]
    #: The order of the provider's statuses along a job's life: within one common status, a
    #: later one is a transition (OpenAI's in_progress → finalizing), an earlier one stale.
    stages: Mapping[str, int]
    #: Whether request counts move while a job runs. Anthropic's stay in ``processing``
    #: until the whole batch ends: its progress is unknown until then, not 0%.
    live_progress: bool
    #: Where the API is, and the environment variable its key is read from by default.
    default_url: str
    key_variable: str
    #: What the provider's job ids look like (a regular expression, matched in full).
    id_pattern: str


def _load(name: str) -> Provider:
    module = import_module(f"batchwatch.providers.{name}.statuses")
    provider: Provider = module.PROVIDER
    return provider


_CATALOG: Mapping[str, Provider] = MappingProxyType({name: _load(name) for name in PROVIDERS})


def provider(name: str) -> Provider:
    """The catalog entry of ``name``; a ``KeyError`` naming the known ones otherwise."""
    try:
        return _CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown provider {name!r} (one of: {', '.join(PROVIDERS)})") from None


def provider_of_id(job_id: str) -> str:
    """The provider whose ids look like ``job_id`` (``batch_…`` OpenAI, ``msgbatch_…``
    Anthropic, a UUID Mistral); Mistral when none does."""
    for entry in _CATALOG.values():
        if re.fullmatch(entry.id_pattern, job_id):
            return entry.name
    return PROVIDERS[0]


def progress_known(job: RemoteJob) -> bool:
    """Whether ``job``'s request counts say how far it is: always when its provider's counts
    move while a job runs, else only once it ended (an Anthropic batch in progress is not at
    0%: its progress is unknown). A provider batchwatch does not know counts as live."""
    entry = _CATALOG.get(job.provider)
    return entry is None or entry.live_progress or job.status.is_terminal


def stage(name: str, raw_status: str) -> int | None:
    """Where ``raw_status`` lies along a ``name`` job's life; None when it is not one of the
    provider's statuses (an unknown one, kept as sent but never ordered)."""
    entry = _CATALOG.get(name)
    return None if entry is None else entry.stages.get(raw_status)
