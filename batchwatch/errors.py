"""Every error a caller of batchwatch's parts may catch, in one place.

Each says who can do something about it: the user (``UserError``, ``ConfigError``), the
operator (``StartupError``), or time (``ApiError.retryable``, ``StoreUnavailable``).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A failed call to Mistral or to the daemon. ``retryable`` says whether the same call
    may succeed later; ``status_code`` is the HTTP status, ``None`` when none came back."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retryable: bool = False,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.retryable = retryable
        self.body = body


class Stopping(Exception):
    """Raised out of a retry wait when the daemon is shutting down."""


class StoreUnavailable(Exception):
    """The database cannot be reached or is locked past the busy timeout; try again later."""


class LeaseLost(Exception):
    """A write made for the team's leader was refused: this daemon no longer holds the lease
    (another took over after it expired). Nothing of that write was kept."""


class WriteConflict(Exception):
    """Another writer changed a job between our read and our write; the cycle is retried."""


class ConfigError(Exception):
    """A configuration problem a user can fix; the message names the key."""


class StartupError(Exception):
    """The daemon cannot start for a reason the operator can fix; the message says which."""


class ActionError(Exception):
    """An action that cannot be done; ``status_code`` is what the local API answers."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class UserError(Exception):
    """A problem the user can fix, found by the CLI itself; printed as one line."""
