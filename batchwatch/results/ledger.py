"""The ledger of an ended job: one entry per line of its output and error files, then one
per request of its input that neither file mentions (docs/mistral-api.md §6).

Files are streamed line by line in binary mode: a job's files can hold 100,000+ lines and
100+ MB, so memory holds the custom ids seen and one line at a time, never a whole file or
a response body.

Outcomes. ``succeeded``: an output-file line in the documented shape with a 2xx
``response.status_code`` and no ``error``. ``failed``: everything else that is a line of
the output or error file, because a line not shown to be a success must be retried, not
trusted. ``not_run``: a custom id of the input that no result line names (a timeout, a
cancel).

The error file's format is undocumented. A line in a shape not understood (not UTF-8, not
JSON, not an object, no string ``custom_id``, ``error`` as a string, ...) still becomes an
entry, ``failed``, with its text kept in ``raw``: never dropped, never a crash.

Duplicates. Every line is an entry, so no line's information is lost. The first line that
names a custom id is that request's row; a later line naming the same id (in the same file
or in the error file after the output file) is yielded with ``duplicate=True``. So the
entries with ``duplicate`` false are one row per request. Output lines come before error
lines, so a success written to the output file is the request's row even if the error file
also names it: a retry must not pay again for a result already in hand. Within one file
the first line wins whatever its outcome; a consumer that wants another rule has every
line. ``Tally`` counts a request once and the duplicates apart, but sums the tokens of
every line: each line is a response that was produced, and billed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeGuard

import orjson

from batchwatch.models import Outcome, RequestCounts, TokenUsage

#: How much of a text is kept (a line not understood, an error message): enough to read the
#: failure, and a bound on what one entry can hold whatever the file contains.
TEXT_LIMIT = 64 * 1024
#: The largest token count kept from one line. More than two billion tokens for one request
#: is not a count but a fault, and every 32-bit integer column can hold what is kept.
_MAX_TOKENS = 2**31 - 1
_BOM = b"\xef\xbb\xbf"

ResultSource = Literal["output", "error"]
Source = Literal["output", "error", "input"]


class LedgerEntry(NamedTuple):
    """One line of an output or error file, or one request of the input with no result.

    A named tuple, not a frozen dataclass: a 100,000-request ledger builds 100,000 of them,
    and a frozen dataclass sets each of its 14 fields through ``object.__setattr__``
    (figure 9: the ledger of 100,000 requests built in 1.19 s as a dataclass, 1.06 s so)."""

    #: ``None`` only for a line whose custom id could not be read.
    custom_id: str | None
    outcome: Outcome
    source: Source
    #: 1-based, blank lines included. Input lines are numbered through the input files in
    #: order, so one number names one line even when a job has several input files.
    line: int
    status_code: int | None = None
    error_message: str | None = None
    error_code: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    #: The line's text when its shape was not understood (at most ``TEXT_LIMIT`` bytes of
    #: it, then a marker).
    raw: str | None = None
    #: An earlier entry of the ledger already named this custom id (see the module notes).
    duplicate: bool = False


def parse_result_line(text: bytes, *, source: ResultSource, line: int) -> LedgerEntry:
    """One line of an output or error file as an entry; total: never raises, whatever
    the bytes. A blank line is no entry: the caller skips it."""
    obj = load_object(text)
    if obj is None:
        return LedgerEntry(None, Outcome.FAILED, source, line, raw=raw_text(text))
    custom_id = custom_id_of(obj)
    response, error = obj.get("response"), obj.get("error")
    status = _status_code(response)
    body = response.get("body") if isinstance(response, dict) else None
    is_2xx = status is not None and 200 <= status < 300
    message, code = _error_fields(error, None if is_2xx else body)
    understood = custom_id is not None and _known_shape(response, status, error)
    succeeded = understood and source == "output" and error is None and is_2xx
    prompt, completion, total = _usage(body)
    return LedgerEntry(
        custom_id,
        Outcome.SUCCEEDED if succeeded else Outcome.FAILED,
        source,
        line,
        status_code=status,
        error_message=message,
        error_code=code,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        raw=None if understood else raw_text(text),
    )


@dataclass(slots=True)
class InputStats:
    """What reading a job's input files found, for a retry to report what it cannot do."""

    #: Non-blank input lines: the job's requests.
    lines: int = 0
    #: Lines that are not a JSON object with a string ``custom_id``: they cannot be
    #: matched to a result nor picked for a retry by id.
    unreadable: int = 0
    #: Lines whose custom id an earlier line already had: their results cannot be told
    #: apart, and a retry by that id re-sends all of them.
    repeated_ids: int = 0


#: Reads one result line into an entry (``parse_result_line``, or a provider's own).
LineParser = Callable[..., LedgerEntry]


def build_ledger(
    input_paths: Sequence[Path],
    output_path: Path | None,
    error_path: Path | None,
    *,
    input_stats: InputStats | None = None,
    parse_line: LineParser = parse_result_line,
) -> Iterator[LedgerEntry]:
    """Every non-blank output and error line as an entry, then one ``not_run`` entry per
    input custom id that no result line names.

    The input files are read last; ``input_stats``, when given, is filled as they are, so
    it is complete once the iteration ends.
    """
    # Every custom id met, and whether an input line has named it yet: one dict, so memory
    # holds each id once. Two sets (result ids, input ids) peaked at 40.8 MB against
    # 21.2 MB for the 200,000 ids of test_a_200000_line_file_is_streamed_in_bounded_memory.
    seen: dict[str, bool] = {}
    if output_path is not None:
        yield from _result_entries(output_path, "output", seen, parse_line)
    if error_path is not None:
        yield from _result_entries(error_path, "error", seen, parse_line)
    yield from _not_run(input_paths, seen, InputStats() if input_stats is None else input_stats)


def _not_run(
    input_paths: Sequence[Path], seen: dict[str, bool], stats: InputStats
) -> Iterator[LedgerEntry]:
    """One entry per input custom id not in ``seen``, counting the input lines in ``stats``."""
    for number, text in _input_lines(input_paths):
        stats.lines += 1
        obj = load_object(text)
        custom_id = None if obj is None else custom_id_of(obj)
        if custom_id is None:
            stats.unreadable += 1
            continue
        named = seen.get(custom_id)
        if named:
            stats.repeated_ids += 1
        elif named is None:
            yield LedgerEntry(custom_id, Outcome.NOT_RUN, "input", number)
        seen[custom_id] = True


@dataclass(slots=True)
class Tally:
    """Counts and usage accumulated while entries stream, so a caller can store them in
    chunks and count in the same pass. A request is counted once, by its first entry; the
    later entries of its id are ``duplicates``; tokens are summed over every entry."""

    succeeded: int = 0
    failed: int = 0
    not_run: int = 0
    duplicates: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def add(self, entry: LedgerEntry) -> None:
        """Count one entry."""
        self.prompt_tokens += entry.prompt_tokens or 0
        self.completion_tokens += entry.completion_tokens or 0
        self.total_tokens += entry.total_tokens or 0
        if entry.duplicate:
            self.duplicates += 1
        elif entry.outcome is Outcome.SUCCEEDED:
            self.succeeded += 1
        elif entry.outcome is Outcome.FAILED:
            self.failed += 1
        else:
            self.not_run += 1

    def counts(self) -> RequestCounts:
        """Requests by outcome, one per request (duplicates left out)."""
        total = self.succeeded + self.failed + self.not_run
        return RequestCounts(total, self.succeeded, self.failed, self.not_run)

    def usage(self) -> TokenUsage:
        """Tokens summed over every entry, duplicates included."""
        return TokenUsage(self.prompt_tokens, self.completion_tokens, self.total_tokens)


def request_lines(input_paths: Sequence[Path], custom_ids: Collection[str]) -> Iterator[bytes]:
    """The input lines of exactly these custom ids, byte for byte and newline-terminated,
    streamed: the content of a retry's input file.

    Every line of a repeated id is yielded (the ledger cannot tell which one failed). A
    file's byte-order mark is not part of its first line and is left out.
    """
    wanted = frozenset(custom_ids)
    if not wanted:
        return
    for path in input_paths:
        for number, text in _lines(path):
            line = text.removeprefix(_BOM) if number == 1 else text
            obj = load_object(line) if line.strip() else None
            if obj is not None and custom_id_of(obj) in wanted:
                yield line if line.endswith(b"\n") else line + b"\n"


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Every line of a file with its 1-based number, blank ones included."""
    with path.open("rb") as fh:
        yield from enumerate(fh, start=1)


def _result_entries(
    path: Path, source: ResultSource, seen: dict[str, bool], parse_line: LineParser
) -> Iterator[LedgerEntry]:
    for number, text in _lines(path):
        if not text.strip():
            continue
        entry = parse_line(text, source=source, line=number)
        custom_id = entry.custom_id
        if custom_id in seen:
            entry = entry._replace(duplicate=True)
        elif custom_id is not None:
            seen[custom_id] = False
        yield entry


def _input_lines(paths: Sequence[Path]) -> Iterator[tuple[int, bytes]]:
    """The non-blank lines of the input files, numbered through the files in order."""
    offset = 0
    for path in paths:
        number = 0
        for number, text in _lines(path):
            if text.strip():
                yield offset + number, text
        offset += number


def load_object(text: bytes) -> dict[str, Any] | None:
    """The JSON object on a line, or ``None`` for anything else."""
    # A file written with a byte-order mark still parses on its first line.
    text = text.removeprefix(_BOM)
    try:
        # orjson first: figure 9 (``python -m tests.benchmarks.results``), the ledger of a
        # 100,000-request job built in 2.13 s with the json module alone, 1.38 s so.
        parsed = orjson.loads(text)
    except ValueError:
        # What orjson refuses and the json module reads (a lone surrogate escape, NaN, a
        # huge integer) is read as the json module reads it.
        try:
            parsed = json.loads(text.decode("utf-8"))
        except (ValueError, RecursionError):
            # ValueError covers bad UTF-8, bad JSON and integers too long to convert; a
            # deep nest of brackets exhausts the parser's recursion instead.
            return None
    return parsed if isinstance(parsed, dict) else None


def custom_id_of(obj: dict[str, Any]) -> str | None:
    value = obj.get("custom_id")
    return text_of(value) if isinstance(value, str) else None


def _status_code(response: object) -> int | None:
    """An HTTP status from ``response.status_code``; anything that is not one is ``None``."""
    if not isinstance(response, dict):
        return None
    value = response.get("status_code")
    if _is_int(value) and 100 <= value <= 599:
        return value
    return None


def _known_shape(response: object, status: int | None, error: object) -> bool:
    """The documented output line (a response with a status, ``error`` null) or an error
    line as the simulator and OpenAI write one (``error`` an object with a message)."""
    if response is not None and status is None:
        return False
    if error is None:
        return response is not None
    if not isinstance(error, dict):
        return False
    code = error.get("code")
    return isinstance(error.get("message"), str) and (
        code is None or isinstance(code, str) or _is_int(code)
    )


def _error_fields(error: object, body: object) -> tuple[str | None, str | None]:
    """The message and code from ``error`` (an object, or a bare string), else from the
    body of a response that was not a success (Mistral's error body has both)."""
    if isinstance(error, str):
        return text_of(error), None
    for source in (error, body):
        if isinstance(source, dict):
            message, code = source.get("message"), source.get("code")
            if _is_int(code):
                code = str(code)
            if isinstance(message, str) or isinstance(code, str):
                return (
                    text_of(message) if isinstance(message, str) else None,
                    text_of(code) if isinstance(code, str) else None,
                )
    return None, None


def _usage(body: object) -> tuple[int | None, int | None, int | None]:
    """Prompt, completion and total tokens from ``body.usage``. Moderations report none;
    OCR's ``usage_info`` counts pages, not tokens, and is left out."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return None, None, None
    prompt = token_count(usage.get("prompt_tokens"))
    completion = token_count(usage.get("completion_tokens"))
    total = token_count(usage.get("total_tokens"))
    if total is None and prompt is not None and completion is not None:
        total = prompt + completion
    return prompt, completion, total


def token_count(value: object) -> int | None:
    if _is_int(value) and 0 <= value <= _MAX_TOKENS:
        return value
    return None


def _is_int(value: object) -> TypeGuard[int]:
    """A JSON integer (``true`` is an ``int`` to Python, not to JSON; the parsers make no
    other subclass of it)."""
    return type(value) is int


def text_of(value: str) -> str:
    """A string from a file, at most ``TEXT_LIMIT`` characters of it, made storable."""
    if len(value) > TEXT_LIMIT:
        value = f"{value[:TEXT_LIMIT]}…[truncated: {len(value)} characters in all]"
    return _storable(value)


def _storable(value: str) -> str:
    """``value`` with what a database refuses written as escapes: a NUL (PostgreSQL's text
    type) and a lone surrogate from a JSON ``\\ud800`` escape (any UTF-8 column)."""
    if "\x00" in value:
        value = value.replace("\x00", "\\x00")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def raw_text(text: bytes) -> str:
    """A line's text without its line ending, at most ``TEXT_LIMIT`` bytes of it; bytes
    that are not UTF-8 are shown as ``\\xNN`` escapes."""
    text = text.rstrip(b"\r\n")
    shown = _storable(text[:TEXT_LIMIT].decode("utf-8", "backslashreplace"))
    if len(text) > TEXT_LIMIT:
        shown += f"…[truncated: {len(text)} bytes in all]"
    return shown
