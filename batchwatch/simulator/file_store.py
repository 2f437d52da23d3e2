"""The Files API store the Mistral and OpenAI simulators share: files by id, some registered
lazily and rendered on first read. Each provider brings its own file record (``files``'s
``StoredFile``, ``openai/files``'s ``SimFile``) and its own listing over ``all()``.

A benchmark seeds 10,000 jobs that all finish in the same instant; writing every result
file then would stall that one request for seconds. Rendering on first read costs only the
files someone actually looks at. Not thread-safe: the simulation holds its lock around every
call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


F = TypeVar("F", bound=_Identified)


class FileStore(Generic[F]):
    """Files by id; those added with ``add_lazy`` are rendered on first read."""

    def __init__(self) -> None:
        self._files: dict[str, F] = {}
        self._pending: dict[str, Callable[[], F]] = {}

    def add(self, file: F) -> None:
        self._files[file.id] = file

    def add_lazy(self, file_id: str, render: Callable[[], F]) -> None:
        self._pending[file_id] = render

    def get(self, file_id: str) -> F | None:
        render = self._pending.pop(file_id, None)
        if render is not None:
            self._files[file_id] = render()
        return self._files.get(file_id)

    def delete(self, file_id: str) -> bool:
        pending = self._pending.pop(file_id, None) is not None
        return self._files.pop(file_id, None) is not None or pending

    def all(self) -> list[F]:
        """Every file, pending ones rendered (a listing shows sizes), in the order they
        were added or rendered."""
        for file_id in list(self._pending):
            self.get(file_id)
        return list(self._files.values())
