"""The local API's bearer token file: created once with a random token, read with its mode checked.

Standard library only: the CLI reads the token on every command and must start fast.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from batchwatch.errors import StartupError


def ensure_token(path: Path) -> str:
    """Read the API token, creating the file (mode 0600, random token) when it is missing."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(path, check_mode=True)
    except OSError as exc:
        if exc.errno == 2:  # the directory is missing
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            return ensure_token(path)
        raise StartupError(f"api.token_file: cannot create {path}: {exc.strerror}") from None
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def read_token(path: Path, *, check_mode: bool = False) -> str:
    try:
        if check_mode and stat.S_IMODE(path.stat().st_mode) & 0o077:
            raise StartupError(
                f"api.token_file: {path} is readable by other users; run `chmod 600 {path}`"
            )
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise StartupError(
            f"no API token at {path}: start the daemon once (`batchwatch serve`) to create "
            "it, or set api.token_file"
        ) from None
    except PermissionError:
        raise StartupError(f"api.token_file: permission denied reading {path}") from None
    if not token:
        raise StartupError(f"api.token_file: {path} is empty")
    return token
