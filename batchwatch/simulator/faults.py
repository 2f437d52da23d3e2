"""Fault injection for the simulators: the upstream failures batchwatch must survive, on
demand. This module holds the faults' names, the rules that ask for them, and each
provider's ``FaultProfile`` (its routes, required fields, status field and error body, so that
a fault looks like that provider's; Mistral's, ``MISTRAL_FAULTS``, is the default, the others
are in their simulators' ``fault_profile``); ``fault_injector`` rolls the dice and keeps the
request log, ``fault_layer`` produces the faults.

A fault is chosen per ``/v1`` request by the first matching rule whose dice roll (a seeded
``random.Random``, so a run can be replayed) comes up; ``/_sim`` routes are never faulted.
What the client sees, and how each fault is produced at the socket level:

=================  ========================================================================
``429``            429, the provider's rate-limit body (Mistral's observed ``{"message": ...}``),
                   ``Retry-After``. Not processed, like a gateway's rejection.
``500``..``504``   that status and the provider's documented error body; 503 has
                   ``Retry-After``. Not processed.
``529``            Anthropic's overloaded_error, as a status: with the provider's error body
                   (the other providers never send it). Not processed.
``stall``          processed at once, then the response waits ``stall_seconds`` before its
                   first byte: a client with a shorter timeout times out.
``slow``           processed; the headers go out at once, then the body trickles out in 20
                   pieces with equal pauses, taking ``stall_seconds`` in all: a download
                   that is slow but never silent for long.
``reset``          not processed; the socket is closed with ``SO_LINGER`` 0, so the kernel
                   sends an RST and the client gets "connection reset" with no response.
``drop_create``    the create route only (``POST /v1/batch/jobs`` for Mistral): the job *is*
                   created, then the connection is closed (FIN) without a byte of response:
                   the lost-response case.
``truncate``       processed; the real headers go out with the full ``Content-Length``, then
                   half the body, then a FIN: the client's read is incomplete. On a
                   download too, however big the file.
``garbage``        not processed; a 200 whose body is a proxy's HTML page, not JSON.
``missing_field``  processed; each job (or file) object of the 200 body, or the list's one
                   required field (Mistral's ``total``) when ``data`` is empty, lacks one
                   required field, picked by the seeded generator.
``unknown_status`` processed; each job object of the 200 body has a status the provider never
                   documented (Mistral's ``"PAUSED"``) in its status field. Only that
                   response: the job's state is unchanged.
=================  ========================================================================

A body fault (``missing_field``, ``unknown_status``) on a response that is not a 200 JSON
object (a 404, say) leaves it alone and is not counted as fired.

Every fault applies to the download routes (Mistral's ``GET /v1/files/{file_id}/content``)
except the body faults, which need a JSON body. A file that answers 404 is not a fault:
delete it (``DELETE /v1/files/{file_id}`` or ``Simulation.delete_file``), as an expired
result.

Control: ``Simulation.faults`` (a ``FaultInjector``) in-process; ``GET/POST/DELETE
/_sim/faults`` over HTTP; ``batchwatch simulate --faults 429:0.05,reset:0.01``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from batchwatch.simulator.api_errors import error_body

ERROR_FAULTS: dict[str, tuple[int, str]] = {
    "500": (500, "Internal server error"),
    "502": (502, "Bad gateway: the upstream service did not answer"),
    "503": (503, "Service unavailable: the service is overloaded, try again later"),
    "504": (504, "Gateway timeout: the upstream service took too long to answer"),
    "529": (529, "Overloaded: the service is temporarily overloaded, try again later"),
}
RATE_LIMIT = (429, "Requests rate limit exceeded")  # Mistral's observed wording
FAULTS = (
    "429", *ERROR_FAULTS, "stall", "slow", "reset", "drop_create", "truncate", "garbage",
    "missing_field", "unknown_status",
)  # fmt: skip
DEFAULT_RETRY_AFTER = 1.0
DEFAULT_STALL_SECONDS = 5.0
_ROUTE_KEY = re.compile(r"(GET|POST|PUT|PATCH|DELETE) /v1/\S*")


class FaultSpecError(ValueError):
    """A fault rule or ``--faults`` item that cannot mean anything; the message names it."""


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Inject ``fault`` into a ``rate`` fraction of the requests to ``route`` (a key as in
    ``/_sim/stats``, or ``"*"`` for every ``/v1`` route), at most ``times`` times."""

    fault: str
    rate: float = 1.0
    times: int | None = None
    route: str = "*"
    retry_after: float | None = None  # 429 and 503; whole seconds, default 1
    stall_seconds: float | None = None  # stall: the wait; slow: the whole body's; default 5

    def __post_init__(self) -> None:
        problem = next(_rule_problems(self), None)
        if problem is not None:
            raise FaultSpecError(problem)

    def applies_to(self, route: str, profile: FaultProfile) -> bool:
        """Whether this rule may fault a request to ``route`` of ``profile``'s API."""
        if self.route not in ("*", route):
            return False
        if self.fault == "drop_create":
            return route == profile.create_route
        if self.fault == "unknown_status":
            return route in profile.job_routes
        return self.fault != "missing_field" or route not in profile.binary_routes

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)


#: ``(status, message) -> body``: a provider's body for a 429 or a 5xx it did not process.
ErrorBody = Callable[[int, str], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class FaultProfile:
    """What the fault layer must know of one provider's API for a fault to look like that
    provider's: route keys as in ``/_sim/stats``, field names as on its wire."""

    create_route: str  # the one route drop_create faults
    job_routes: frozenset[str]  # the routes answering jobs: unknown_status faults only these
    binary_routes: frozenset[str]  # downloads, not JSON: missing_field leaves them alone
    #: per kind of object, its required fields: missing_field removes one of them
    required_fields: Mapping[str, tuple[str, ...]]
    kind_field: str  # the field naming an object's kind: "object", or Anthropic's "type"
    list_field: str  # the required field an empty list still has, for missing_field
    status_field: str  # where unknown_status writes
    undocumented_status: str  # what it writes there
    error_body: ErrorBody

    def problem(self, rule: FaultRule) -> str | None:
        """Why ``rule`` cannot apply to this API at all; ``None`` when it can."""
        if rule.fault == "drop_create" and rule.route not in ("*", self.create_route):
            return f"drop_create only applies to {self.create_route!r}, not {rule.route!r}"
        if rule.fault == "unknown_status" and rule.route not in ("*", *self.job_routes):
            return f"unknown_status only applies to routes that return jobs, not {rule.route!r}"
        return None


def _mistral_error(status: int, message: str) -> dict[str, Any]:
    """A 429 as observed (``{"message": ...}``, undocumented); a 5xx as documented."""
    if status == RATE_LIMIT[0]:
        return {"message": message}
    return error_body(message, "server_error")


_MISTRAL_JOB_ROUTES = frozenset(
    {"GET /v1/batch/jobs", "POST /v1/batch/jobs", "GET /v1/batch/jobs/{job_id}",
     "POST /v1/batch/jobs/{job_id}/cancel"}
)  # fmt: skip
# docs/mistral-api.md §1.3 (a job), §2 (a file)
_MISTRAL_REQUIRED = {
    "batch": ("id", "input_files", "endpoint", "errors", "status", "created_at",
              "total_requests", "completed_requests", "succeeded_requests", "failed_requests"),
    "file": ("id", "object", "bytes", "created_at", "filename", "purpose", "sample_type",
             "source"),
}  # fmt: skip
MISTRAL_FAULTS = FaultProfile(
    create_route="POST /v1/batch/jobs",
    job_routes=_MISTRAL_JOB_ROUTES,
    binary_routes=frozenset({"GET /v1/files/{file_id}/content"}),
    required_fields=_MISTRAL_REQUIRED,
    kind_field="object",
    list_field="total",
    status_field="status",
    undocumented_status="PAUSED",
    error_body=_mistral_error,
)


def _rule_problems(rule: FaultRule) -> Iterator[str]:
    """What is wrong with ``rule``; only the first is reported, so later checks may rely on
    the earlier ones having passed."""
    if rule.fault not in FAULTS:
        yield f"unknown fault {rule.fault!r} (known: {', '.join(FAULTS)})"
    if not 0.0 <= rule.rate <= 1.0:  # also rejects NaN
        yield f"the rate must be between 0 and 1, not {rule.rate!r}"
    if rule.times is not None and rule.times < 0:
        yield f"times must be 0 or more, not {rule.times!r}"
    if rule.route != "*" and not _ROUTE_KEY.fullmatch(rule.route):
        yield f"route must be '*' or like 'GET /v1/batch/jobs/{{job_id}}', not {rule.route!r}"
    after = rule.retry_after
    # HTTP's Retry-After is whole seconds; urllib3 rejects "0.5" as an invalid header.
    if after is not None and not (
        after >= 0 and math.isfinite(after) and float(after).is_integer()
    ):
        yield f"retry_after must be a whole number of seconds, 0 or more, not {after!r}"
    if rule.stall_seconds is not None and not 0.0 <= rule.stall_seconds < math.inf:
        yield f"stall_seconds must be a number of seconds, 0 or more, not {rule.stall_seconds!r}"


def parse_fault_spec(text: str) -> tuple[FaultRule, ...]:
    """``"429:0.05,reset:0.01"`` → rules (a bare name means rate 1), for ``--faults``."""
    if not text.strip():
        raise FaultSpecError("no faults given: write name:rate items, like 429:0.05,reset:0.01")
    rules = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            raise FaultSpecError(f"an empty item in {text!r}")
        name, colon, rate_text = item.partition(":")
        try:
            rate = float(rate_text) if colon else 1.0
        except ValueError:
            raise FaultSpecError(f"bad fault {item!r}: {rate_text!r} is not a rate") from None
        try:
            rules.append(FaultRule(name.strip(), rate))
        except FaultSpecError as exc:
            raise FaultSpecError(f"bad fault {item!r}: {exc}") from None
    return tuple(rules)


def parse_retry_after(text: str) -> float:
    """``--retry-after``, checked by the rules' own validation."""
    value = _seconds(text, "retry_after")
    FaultRule("503", retry_after=value)
    return value


def parse_stall_seconds(text: str) -> float:
    """``--stall-seconds``, checked by the rules' own validation."""
    value = _seconds(text, "stall_seconds")
    FaultRule("stall", stall_seconds=value)
    return value


def _seconds(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise FaultSpecError(f"{name} must be a number of seconds, not {text!r}") from None


def with_timings(
    rules: Iterable[FaultRule], retry_after: float | None, stall_seconds: float | None
) -> tuple[FaultRule, ...]:
    """``rules`` with the CLI's ``--retry-after``/``--stall-seconds`` where given."""
    return tuple(
        replace(
            rule,
            retry_after=rule.retry_after if retry_after is None else retry_after,
            stall_seconds=rule.stall_seconds if stall_seconds is None else stall_seconds,
        )
        for rule in rules
    )
