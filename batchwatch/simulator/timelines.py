"""A status timeline, whatever the provider's status enum: every status a simulated job
has or will have, with the instant it enters each. Each provider's ``lifecycle`` builds its
own natural timeline (its status graph); what a cancel does to one, and reading the status
at an instant, are the same for all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

S = TypeVar("S", bound=Enum)


@dataclass(frozen=True, slots=True)
class StatusEntry(Generic[S]):
    """``status`` is entered at ``at`` (epoch seconds). Build it unsubscripted,
    ``StatusEntry(status, at)``: a slotted frozen dataclass cannot be called through
    ``StatusEntry[X]`` on Python 3.11."""

    status: S
    at: float


def with_cancel(
    natural: tuple[StatusEntry[S], ...],
    cancel_at: float | None,
    cancel_seconds: float,
    *,
    cancelling: S,
    cancelled: S,
) -> tuple[StatusEntry[S], ...]:
    """``natural`` unless cancelled; else cut at ``cancel_at``: the statuses entered by
    then, then ``cancelling`` at once and ``cancelled`` ``cancel_seconds`` later."""
    if cancel_at is None:
        return natural
    kept = tuple(entry for entry in natural if entry.at <= cancel_at)
    return (
        *kept,
        StatusEntry(cancelling, cancel_at),
        StatusEntry(cancelled, cancel_at + cancel_seconds),
    )


def status_at(line: Sequence[StatusEntry[S]], now: float) -> S:
    """The status at ``now``: the last one entered by then (the first before it starts)."""
    status = line[0].status
    for entry in line:
        if entry.at > now:
            break
        status = entry.status
    return status
