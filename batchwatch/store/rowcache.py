"""The rows of active jobs as this process last read or wrote them, kept between poll cycles
so that a cycle does not decode 10,000 unchanged rows again.

Each entry is a row *at a version*. ``Writer.load`` reads the ``row_version`` of every cached
job under the write lock and reuses an entry only if it is the row's version now; any other
row is read in full. Every update of a job row must move its version by one or the database
refuses it (migration 0008's triggers), so no statement, whoever runs it, can change a row
behind an entry: an entry can go stale, never wrong.

Measured (`python -m tests.benchmarks.run --only cycle`, 10,000 active jobs, SQLite, the
same machine the same day): the cycle's write step 0.178 s without it, 0.091 s with it
(10,000 versions read instead of 10,000 rows decoded); the cycle at ``tracking.concurrency``
16, 0.62 s without it (target 0.5 s), 0.455 s with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from batchwatch.models import StoredJob

#: A row as a version of it: ``(row_version, the row)``.
Versioned = tuple[int, StoredJob]


class RowCache:
    """Rows by job id, each with the ``row_version`` it was read or written at."""

    def __init__(self) -> None:
        self._rows: dict[str, Versioned] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._rows

    def at(self, job_id: str, version: int) -> StoredJob | None:
        """The cached row of ``job_id`` if it is the one at ``version``."""
        entry = self._rows.get(job_id)
        return entry[1] if entry is not None and entry[0] == version else None

    def update(self, rows: Mapping[str, Versioned | None]) -> None:
        """Rows a committed transaction read or left behind; ``None``: a row it changed in a
        way not known here, to be read again. Only rows still polled are kept."""
        for job_id, entry in rows.items():
            if entry is None or not _polled(entry[1]):
                self._rows.pop(job_id, None)
            else:
                self._rows[job_id] = entry

    def retain(self, job_ids: Iterable[str]) -> None:
        """Forget every job but ``job_ids`` (the jobs a poll cycle saw: the others ended or
        left through another writer, and would otherwise stay here for good)."""
        keep = set(job_ids)
        for job_id in [i for i in self._rows if i not in keep]:
            del self._rows[job_id]


def _polled(job: StoredJob) -> bool:
    return not job.status.is_terminal and job.deleted_upstream_at is None
