"""The one retry policy: which failures are worth another attempt, and how long to wait first.

Standard library only, so the CLI's client of the local daemon (which must not import
requests) repeats an unconfirmed create by the same rule as the daemon. The daemon's HTTP
session hands this policy to urllib3 (``http.py``), which also honours ``Retry-After``.
Every wait ends at once when the stop event (the daemon's shutdown) is set.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

#: Statuses that say "not now": the same request may succeed later.
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Up to ``attempts`` retries, after an exponential backoff with jitter, capped."""

    attempts: int = 4
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    jitter: float = 0.5

    def backoff(self, retry: int) -> float:
        """Seconds before retry number ``retry`` (0-based), as urllib3 counts them: the
        first retry goes at once, then ``backoff_factor * 2**retry`` plus jitter, capped."""
        if retry == 0:
            return 0.0
        return min(
            self.backoff_max, self.backoff_factor * 2.0**retry + random.uniform(0, self.jitter)
        )

    @staticmethod
    def retryable(status: int | None) -> bool:
        """A request that got no answer, or one of these statuses, may succeed if sent again
        (when sending it again is safe: see ``outcome_unknown``)."""
        return status is None or status in RETRYABLE_STATUS

    @staticmethod
    def outcome_unknown(status: int | None) -> bool:
        """A request that is not safe to resend blindly (a create) and got no answer, a
        timeout or a server error: it may or may not have been carried out. Such a request
        is repeated only under its idempotency key, after checking what it did."""
        return status is None or status == 408 or status >= 500

    def pause(self, retry: int, stop: threading.Event | None = None) -> bool:
        """Wait the backoff before retry number ``retry``; False when ``stop`` was set first
        (shutting down: give up instead of retrying)."""
        return wait(self.backoff(retry), stop)


def wait(seconds: float, stop: threading.Event | None) -> bool:
    """Sleep ``seconds``; False at once when ``stop`` is set (a CLI has none: Ctrl-C ends it)."""
    if stop is None:
        time.sleep(max(seconds, 0.0))
        return True
    return not stop.wait(max(seconds, 0.0))
