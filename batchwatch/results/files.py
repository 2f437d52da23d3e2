"""A result file on disk: streamed, hashed, synced, and only then given its final name.

Nothing here holds a file whole in memory: chunks go from the socket to disk and through
sha256 one at a time. A file is written as ``.NAME.part`` in the job's directory, fsynced,
renamed to ``NAME`` and the directory fsynced, so a file under its final name is always
complete; a crash or a broken download leaves at most a ``.part``, which the next attempt
removes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PART = ".part"


@dataclass(frozen=True, slots=True)
class Written:
    path: Path
    bytes: int
    sha256: str


def remove_parts(directory: Path) -> int:
    """Remove the partial files an interrupted attempt left in ``directory``."""
    removed = 0
    if directory.is_dir():
        for leftover in directory.glob(f".*{PART}"):
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


def write_stream(
    dest: Path, open_chunks: Callable[[], AbstractContextManager[Iterator[bytes]]]
) -> Written:
    """Write the chunks ``open_chunks()`` yields to ``dest``, atomically (see the module)."""
    return _write(dest, open_chunks)


def write_lines(dest: Path, objects: Iterable[Any]) -> Written:
    """``objects`` as JSONL (inline ``outputs``, inline requests), written like a download."""
    lines = (json.dumps(obj, separators=(",", ":")).encode() + b"\n" for obj in objects)
    return _write(dest, lambda: nullcontext(lines))


def _write(
    dest: Path, open_chunks: Callable[[], AbstractContextManager[Iterator[bytes]]]
) -> Written:
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}{PART}")
    digest = hashlib.sha256()
    size = 0
    try:
        with part.open("wb") as sink, open_chunks() as chunks:
            for chunk in chunks:
                sink.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    _sync_directory(dest.parent)
    return Written(dest, size, digest.hexdigest())


def _sync_directory(directory: Path) -> None:
    """Make the rename durable: the directory entry is on disk once this returns."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def kept_file(path: str, directory: Path | None) -> Path | None:
    """``path`` (a result file's, as the database holds it) if it is a file inside
    ``directory``, else None: a database edited by hand, or restored from another machine,
    must not make a route serve any file of the host."""
    if directory is None:
        return None
    found = Path(path).resolve()
    if not found.is_relative_to(directory.resolve()) or not found.is_file():
        return None
    return found
