"""The ledger of an ended job: every result line an entry whatever its shape, the requests no
result names as not run, duplicates kept but counted once, tokens summed, the original
input lines of a retry, and all of it streamed in bounded memory."""

from __future__ import annotations

import json
import tempfile
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from batchwatch.models import Outcome, RequestCounts, TokenUsage
from batchwatch.results.ledger import (
    TEXT_LIMIT,
    InputStats,
    LedgerEntry,
    Tally,
    build_ledger,
    parse_result_line,
    request_lines,
)

USAGE = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}


def jsonl(*objects: object) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


def ok_line(custom_id: str, usage: dict[str, Any] | None = USAGE, status: int = 200) -> bytes:
    body: dict[str, Any] = {"object": "chat.completion", "choices": []}
    if usage is not None:
        body["usage"] = usage
    line = {"id": "batch-1", "custom_id": custom_id, "error": None}
    return jsonl(line | {"response": {"status_code": status, "body": body}})


def error_line(custom_id: str, message: str = "boom") -> bytes:
    """The error line the simulator writes (batchwatch/simulator/results.py)."""
    body = {"object": "error", "message": message, "type": "server_error", "code": None}
    return jsonl(
        {
            "id": "batch-2",
            "custom_id": custom_id,
            "response": {"status_code": 500, "body": body},
            "error": {"message": message, "code": "simulated_failure"},
        }
    )


def input_lines(*custom_ids: str) -> bytes:
    return jsonl(*({"custom_id": c, "body": {"messages": []}} for c in custom_ids))


def write(directory: Path, name: str, content: bytes) -> Path:
    path = directory / name
    path.write_bytes(content)
    return path


def ledger(
    tmp: Path, inputs: Sequence[bytes], output: bytes | None, errors: bytes | None
) -> tuple[list[LedgerEntry], InputStats]:
    stats = InputStats()
    entries = build_ledger(
        [write(tmp, f"in{n}.jsonl", content) for n, content in enumerate(inputs)],
        None if output is None else write(tmp, "out.jsonl", output),
        None if errors is None else write(tmp, "err.jsonl", errors),
        input_stats=stats,
    )
    return list(entries), stats


def tally(entries: list[LedgerEntry]) -> Tally:
    counted = Tally()
    for entry in entries:
        counted.add(entry)
    return counted


# --- one line -------------------------------------------------------------------------


def test_a_documented_output_line_succeeded_with_its_usage() -> None:
    entry = parse_result_line(ok_line("a"), source="output", line=3)
    assert entry == LedgerEntry(
        "a", Outcome.SUCCEEDED, "output", 3, status_code=200,
        prompt_tokens=12, completion_tokens=8, total_tokens=20,
    )  # fmt: skip


@pytest.mark.parametrize("status", [400, 422, 429, 500, 503])
def test_a_non_2xx_output_line_failed_with_the_error_body_message(status: int) -> None:
    body = {"object": "error", "message": "slow down", "type": "rate_limit", "code": "1300"}
    line = jsonl({"custom_id": "a", "response": {"status_code": status, "body": body}})
    entry = parse_result_line(line, source="output", line=1)
    assert (entry.outcome, entry.status_code) == (Outcome.FAILED, status)
    assert (entry.error_message, entry.error_code, entry.raw) == ("slow down", "1300", None)


def test_a_2xx_output_line_with_an_error_failed() -> None:
    line = jsonl(
        {"custom_id": "a", "response": {"status_code": 200, "body": {}}, "error": {"message": "x"}}
    )
    entry = parse_result_line(line, source="output", line=1)
    assert (entry.outcome, entry.error_message) == (Outcome.FAILED, "x")


def test_a_2xx_line_in_the_error_file_still_failed() -> None:
    entry = parse_result_line(ok_line("a"), source="error", line=1)
    assert (entry.outcome, entry.custom_id, entry.raw) == (Outcome.FAILED, "a", None)


def test_the_simulators_error_line_is_understood() -> None:
    entry = parse_result_line(error_line("a", "Simulated failure"), source="error", line=2)
    assert entry == LedgerEntry(
        "a", Outcome.FAILED, "error", 2, status_code=500,
        error_message="Simulated failure", error_code="simulated_failure",
    )  # fmt: skip


NOT_UNDERSTOOD = [
    # (line, custom_id read, error message read)
    (b'{"custom_id": "a", "error": "quota exceeded"}', "a", "quota exceeded"),
    (b'{"custom_id": "a", "response": null, "error": {"code": "E1"}}', "a", None),
    (b'{"custom_id": "a", "response": null, "error": {"message": "m", "code": []}}', "a", "m"),
    (b'{"custom_id": "a", "error": ["not", "an", "object"]}', "a", None),
    (b'{"custom_id": "a", "response": {"status_code": "200"}, "error": null}', "a", None),
    (b'{"custom_id": "a", "response": {"status_code": 1200}, "error": null}', "a", None),
    (b'{"custom_id": "a"}', "a", None),
    (b'{"custom_id": 7, "response": {"status_code": 200}, "error": null}', None, None),
    (b'{"response": {"status_code": 200, "body": {}}, "error": null}', None, None),
    (b"{}", None, None),
    (b"[1, 2, 3]", None, None),
    (b'"just a string"', None, None),
    (b"Internal Server Error", None, None),
    (b'{"custom_id": "a", "error": {"message": "cut off', None, None),
    (b'{"custom_id": "\xff\xfe", "error": {"message": "m"}}', None, None),
    (b"[" * 50_000, None, None),  # deeper than the parser can recurse
]


@pytest.mark.parametrize(("line", "custom_id", "message"), NOT_UNDERSTOOD)
@pytest.mark.parametrize("source", ["output", "error"])
def test_a_line_not_understood_failed_and_kept_raw(
    line: bytes, custom_id: str | None, message: str | None, source: Any
) -> None:
    entry = parse_result_line(line + b"\n", source=source, line=9)
    assert (entry.outcome, entry.source, entry.line) == (Outcome.FAILED, source, 9)
    assert (entry.custom_id, entry.error_message) == (custom_id, message)
    assert entry.raw == line[:TEXT_LIMIT].decode("utf-8", "backslashreplace")


def test_the_openai_error_shape_is_understood() -> None:
    line = b'{"custom_id": "a", "response": null, "error": {"message": "m", "code": 42}}'
    entry = parse_result_line(line, source="error", line=1)
    assert (entry.error_message, entry.error_code, entry.raw) == ("m", "42", None)


def test_raw_text_of_a_huge_line_is_cut_with_a_marker() -> None:
    line = b"x" * (TEXT_LIMIT * 3) + b"\n"
    raw = parse_result_line(line, source="error", line=1).raw
    assert raw is not None
    assert raw.startswith("x" * TEXT_LIMIT)
    assert raw.endswith(f"…[truncated: {TEXT_LIMIT * 3} bytes in all]")
    assert len(raw) < TEXT_LIMIT + 100


def test_a_lone_surrogate_escape_is_made_storable() -> None:
    line = b'{"custom_id": "a\\ud800", "error": {"message": "m\\udfff"}}'
    entry = parse_result_line(line, source="error", line=1)
    assert (entry.custom_id, entry.error_message) == ("a\\ud800", "m\\udfff")


@given(st.binary(max_size=300))
@example(b'{"custom_id": "a", "response": {"status_code": 200, "body": {"usage": 5}}}')
@example(b'{"custom_id": "a", "response": {"status_code": 1e400}, "error": null}')
@example(b'{"custom_id": "a", "response": {"status_code": ' + b"9" * 5000 + b"}}")
@example(b'{"custom_id": "\\udc80", "error": "\\ud800"}')
@example(b"\xef\xbb\xbf{}")
@example(b'{"custom_id": "a\\u0000", "error": "\x00"}')
def test_parsing_any_bytes_never_raises_and_gives_storable_text(line: bytes) -> None:
    for source in ("output", "error"):
        entry = parse_result_line(line, source=source, line=1)
        for text in (entry.custom_id, entry.error_message, entry.error_code, entry.raw):
            if text is not None:
                text.encode("utf-8")  # a lone surrogate would raise here
                assert "\x00" not in text  # PostgreSQL's text type refuses a NUL
        assert entry.raw is not None or entry.custom_id is not None


# --- usage ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (USAGE, (12, 8, 20)),
        ({"prompt_tokens": 30, "total_tokens": 30}, (30, None, 30)),  # embeddings
        ({"prompt_tokens": 5, "completion_tokens": 7}, (5, 7, 12)),  # total missing: the sum
        ({"prompt_tokens": 5}, (5, None, None)),
        ({"prompt_tokens": True, "completion_tokens": -1, "total_tokens": "20"}, (None,) * 3),
        ({"prompt_tokens": 1.5, "completion_tokens": 2, "total_tokens": None}, (None, 2, None)),
        ({}, (None, None, None)),
        (None, (None, None, None)),  # moderations
    ],
)
def test_usage_is_read_from_the_response_body(
    usage: dict[str, Any] | None, expected: tuple[int | None, ...]
) -> None:
    entry = parse_result_line(ok_line("a", usage), source="output", line=1)
    assert (entry.prompt_tokens, entry.completion_tokens, entry.total_tokens) == expected
    assert entry.outcome is Outcome.SUCCEEDED


def test_ocr_pages_are_not_counted_as_tokens() -> None:
    body = {"pages": [], "usage_info": {"pages_processed": 3, "doc_size_bytes": 100}}
    line = jsonl({"custom_id": "a", "response": {"status_code": 200, "body": body}})
    entry = parse_result_line(line, source="output", line=1)
    assert (entry.prompt_tokens, entry.completion_tokens, entry.total_tokens) == (None,) * 3


def test_usage_sums_every_line_that_reported_tokens(tmp_path: Path) -> None:
    output = (
        ok_line("a")
        + ok_line("b", {"prompt_tokens": 3, "completion_tokens": 4})
        + ok_line("c", None)
        + ok_line("a")  # a duplicate: a response produced, and billed, all the same
    )
    entries, _ = ledger(tmp_path, [input_lines("a", "b", "c")], output, None)
    usage = tally(entries).usage()
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (27, 20, 47)


# --- a whole job ----------------------------------------------------------------------


def test_requests_no_result_names_are_not_run(tmp_path: Path) -> None:
    """As after a timeout or a cancel: two ran and succeeded, one failed, two never ran."""
    inputs = input_lines("a", "b", "c") + b"\n" + input_lines("d", "e")
    entries, _ = ledger(tmp_path, [inputs], ok_line("b") + ok_line("a"), error_line("d"))
    rows = [(e.custom_id, e.outcome, e.source, e.line) for e in entries]
    assert rows == [
        ("b", Outcome.SUCCEEDED, "output", 1),
        ("a", Outcome.SUCCEEDED, "output", 2),
        ("d", Outcome.FAILED, "error", 1),
        ("c", Outcome.NOT_RUN, "input", 3),
        ("e", Outcome.NOT_RUN, "input", 6),  # line 4 is blank
    ]
    counts = tally(entries).counts()
    assert (counts.total, counts.succeeded, counts.failed, counts.not_run) == (5, 2, 1, 2)


def test_a_job_with_no_result_files_has_every_request_not_run(tmp_path: Path) -> None:
    entries, _ = ledger(tmp_path, [input_lines("a", "b")], None, None)
    assert [(e.custom_id, e.outcome) for e in entries] == [
        ("a", Outcome.NOT_RUN),
        ("b", Outcome.NOT_RUN),
    ]


def test_input_lines_are_numbered_through_the_files_in_order(tmp_path: Path) -> None:
    first, second = input_lines("a", "b") + b"\n", input_lines("c", "d")
    entries, stats = ledger(tmp_path, [first, second], ok_line("a"), None)
    assert [(e.custom_id, e.line) for e in entries if e.source == "input"] == [
        ("b", 2),
        ("c", 4),
        ("d", 5),
    ]
    assert stats.lines == 4


def test_unreadable_input_lines_are_counted_not_invented(tmp_path: Path) -> None:
    inputs = (
        b"\xef\xbb\xbf" + input_lines("a")  # a byte-order mark: still readable
        + b"not json\n"
        + b'{"body": {}}\n'
        + b'{"custom_id": 3, "body": {}}\n'
        + b"[]\n"
        + input_lines("b", "b", "c")
    )  # fmt: skip
    entries, stats = ledger(tmp_path, [inputs], ok_line("c"), None)
    assert [e.custom_id for e in entries if e.outcome is Outcome.NOT_RUN] == ["a", "b"]
    assert (stats.lines, stats.unreadable, stats.repeated_ids) == (8, 4, 1)


def test_the_same_id_in_output_and_error_file_is_one_request(tmp_path: Path) -> None:
    """The output file comes first: a success there is the request's row, so a retry does
    not pay again for a result already in hand; the error line is kept, marked."""
    entries, _ = ledger(tmp_path, [input_lines("a", "b")], ok_line("a"), error_line("a"))
    assert [(e.source, e.outcome, e.duplicate) for e in entries] == [
        ("output", Outcome.SUCCEEDED, False),
        ("error", Outcome.FAILED, True),
        ("input", Outcome.NOT_RUN, False),
    ]
    assert entries[1].error_message == "boom"
    counts = tally(entries).counts()
    assert (counts.total, counts.succeeded, counts.failed, counts.not_run) == (2, 1, 0, 1)
    assert tally(entries).duplicates == 1


def test_an_id_twice_in_one_file_keeps_the_first_as_the_request(tmp_path: Path) -> None:
    errors = error_line("a", "first") + error_line("a", "second") + error_line("a", "third")
    entries, _ = ledger(tmp_path, [input_lines("a")], None, errors)
    assert [(e.error_message, e.duplicate, e.line) for e in entries] == [
        ("first", False, 1),
        ("second", True, 2),
        ("third", True, 3),
    ]
    counts = tally(entries).counts()
    assert (counts.total, counts.failed, tally(entries).duplicates) == (1, 1, 2)


def test_lines_without_a_custom_id_are_never_duplicates(tmp_path: Path) -> None:
    entries, _ = ledger(tmp_path, [input_lines("a")], b"{}\n{}\n", b"oops\n")
    assert [(e.custom_id, e.outcome, e.duplicate) for e in entries] == [
        (None, Outcome.FAILED, False),
        (None, Outcome.FAILED, False),
        (None, Outcome.FAILED, False),
        ("a", Outcome.NOT_RUN, False),
    ]


def test_a_tally_counts_each_request_once_and_every_lines_tokens(tmp_path: Path) -> None:
    output = ok_line("a") + ok_line("b", status=429) + ok_line("a")
    entries, _ = ledger(tmp_path, [input_lines("a", "b", "c", "d")], output, error_line("c"))
    counted = tally(entries)
    assert counted.counts() == RequestCounts(total=4, succeeded=1, failed=2, not_run=1)
    assert counted.duplicates == 1
    assert counted.usage() == TokenUsage(36, 24, 60)


def test_a_job_in_every_documented_shape_is_accounted_for(tmp_path: Path) -> None:
    """The shapes of docs/mistral-api.md §6 and of the simulator: 2xx output lines, an
    output line the endpoint rejected (400, 422), error-file lines, requests never run."""
    output = ok_line("r1") + ok_line("r2", status=400) + ok_line("r3") + ok_line("r4", status=422)
    errors = error_line("r5") + error_line("r6")
    inputs = input_lines(*(f"r{i}" for i in range(1, 9)))
    entries, _ = ledger(tmp_path, [inputs], output, errors)
    by_outcome: dict[Outcome, list[str | None]] = {o: [] for o in Outcome}
    for entry in entries:
        by_outcome[entry.outcome].append(entry.custom_id)
        assert entry.raw is None
    assert by_outcome == {
        Outcome.SUCCEEDED: ["r1", "r3"],
        Outcome.FAILED: ["r2", "r4", "r5", "r6"],
        Outcome.NOT_RUN: ["r7", "r8"],
    }
    assert tally(entries).counts() == RequestCounts(8, 2, 4, 2)


# --- a retry's input ------------------------------------------------------------------


def test_request_lines_are_the_original_bytes_of_the_chosen_ids(tmp_path: Path) -> None:
    a = b'{"body": {"n": 1.50}, "custom_id": "a"}\r\n'  # key order, CRLF, 1.50 as written
    b = '{"custom_id":"b","body":{"text":"caf\\u00e9 ☕"}}\n'.encode()
    c = b'{"custom_id": "c", "body": {}}'  # the last line, with no newline
    first = write(tmp_path, "1.jsonl", b"\xef\xbb\xbf" + a + b"\n" + b + b"garbage\n")
    second = write(tmp_path, "2.jsonl", c)
    chosen = list(request_lines([first, second], ["c", "a", "zz"]))
    assert chosen == [a, c + b"\n"]
    assert list(request_lines([first, second], {"b"})) == [b]
    assert list(request_lines([first, second], [])) == []


def test_request_lines_of_a_repeated_id_are_all_sent_again(tmp_path: Path) -> None:
    lines = [b'{"custom_id": "a", "body": {"n": 1}}\n', b'{"custom_id": "a", "body": {"n": 2}}\n']
    path = write(tmp_path, "in.jsonl", b"".join(lines) + input_lines("b"))
    assert list(request_lines([path], ["a"])) == lines


def test_a_retry_of_what_did_not_succeed_holds_exactly_those_requests(tmp_path: Path) -> None:
    inputs = write(tmp_path, "in.jsonl", input_lines("a", "b", "c", "d"))
    output = write(tmp_path, "out.jsonl", ok_line("a") + ok_line("b", status=500))
    retry = {
        e.custom_id
        for e in build_ledger([inputs], output, None)
        if e.outcome is not Outcome.SUCCEEDED and not e.duplicate and e.custom_id is not None
    }
    assert b"".join(request_lines([inputs], retry)) == input_lines("b", "c", "d")


# --- properties -----------------------------------------------------------------------

IDS = st.sampled_from(["a", "b", "c", "d", "é"])
JUNK = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b""))
RESULT = st.one_of(
    IDS.map(lambda c: ok_line(c).rstrip(b"\n")),
    IDS.map(lambda c: error_line(c).rstrip(b"\n")),
    IDS.map(lambda c: b'{"custom_id": "%s", "error": "x"}' % c.encode()),
    st.sampled_from([b"", b"  ", b"\r", b"{}", b"[]", b"\xff"]),
    JUNK,
)
INPUT = st.one_of(IDS.map(lambda c: input_lines(c).rstrip(b"\n")), JUNK)


def custom_id_of(line: bytes) -> str | None:
    try:
        parsed = json.loads(line.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return None
    value = parsed.get("custom_id") if isinstance(parsed, dict) else None
    return value if isinstance(value, str) else None


@given(st.lists(RESULT, max_size=8), st.lists(RESULT, max_size=8), st.lists(INPUT, max_size=8))
def test_one_entry_per_result_line_and_per_request_never_named(
    output: list[bytes], errors: list[bytes], inputs: list[bytes]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        entries, stats = ledger(
            Path(directory), [b"\n".join(inputs)], b"\n".join(output), b"\n".join(errors)
        )
    results = [line for line in output + errors if line.strip()]
    named = {custom_id_of(line) for line in results}
    requested = {custom_id_of(line) for line in inputs} - {None}
    assert [e.source for e in entries] == (
        ["output"] * sum(1 for line in output if line.strip())
        + ["error"] * sum(1 for line in errors if line.strip())
        + ["input"] * len(requested - named)
    )
    assert {e.custom_id for e in entries if e.source == "input"} == requested - named
    assert sum(1 for e in entries if not e.duplicate and e.custom_id is not None) == len(
        named - {None} | requested
    )
    counts = tally(entries).counts()
    assert counts.total + tally(entries).duplicates == len(entries)
    assert stats.lines == sum(1 for line in inputs if line.strip())


# --- streaming ------------------------------------------------------------------------


def test_a_200000_line_file_is_streamed_in_bounded_memory(tmp_path: Path) -> None:
    """Memory holds the custom ids (about 20 MB here) and one line: far less than the
    files (about 130 MB), which a reader that loads a whole file, or keeps every entry
    before yielding the first, exceeds."""
    lines = 200_000
    body = {"choices": [{"message": {"content": "x" * 400}}], "usage": USAGE}
    template = {"custom_id": "{}", "response": {"status_code": 200, "body": body}, "error": None}
    ok = json.dumps(template).replace('"{}"', '"r%d"').encode() + b"\n"
    failed = ok.replace(b'"status_code": 200', b'"status_code": 500')
    output = tmp_path / "out.jsonl"
    with output.open("wb") as fh:
        for i in range(lines):
            fh.write((ok if i % 10 else failed) % i)
    inputs = write(tmp_path, "in.jsonl", input_lines(*(f"r{i}" for i in range(lines + 5))))
    size = output.stat().st_size + inputs.stat().st_size
    counted = Tally()
    tracemalloc.start()
    try:
        for entry in build_ledger([inputs], output, None):
            counted.add(entry)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    counts = counted.counts()
    assert (counts.succeeded, counts.failed, counts.not_run) == (180_000, 20_000, 5)
    assert counted.usage().total_tokens == lines * 20
    assert peak < size / 4, f"peak {peak / 1e6:.1f} MB for {size / 1e6:.1f} MB of files"


def test_a_stored_row_holds_each_field_in_its_column() -> None:
    from batchwatch.results.ingest import stored_row
    from batchwatch.store.results import LEDGER_COLUMNS

    entry = LedgerEntry(
        "c", Outcome.FAILED, "error", 7, 500, "m", "code", 1, 2, 3, raw="r", duplicate=True
    )
    row = dict(zip(LEDGER_COLUMNS, stored_row(entry), strict=True))
    expected = {name: getattr(entry, name) for name in LEDGER_COLUMNS}
    assert row == expected | {"outcome": "failed"}
