"""The local API's one credential: a bearer token, compared in constant time."""

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer


def bearer_guard(token: str) -> Callable[[HTTPAuthorizationCredentials | None], None]:
    """The token check: refuses (401) anything but ``token``."""
    expected = token.encode()

    def check(credentials: HTTPAuthorizationCredentials | None) -> None:
        given = credentials.credentials if credentials else ""
        # Constant-time comparison: response timing must not reveal how much of a guess was
        # right.
        if not hmac.compare_digest(given.encode(), expected):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong bearer token (see api.token_file)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def bearer_dependency(token: str) -> Callable[..., Awaitable[None]]:
    """``bearer_guard`` as the routes' dependency. async: a plain function would cost every
    request a trip through the thread pool, for a check that takes a microsecond."""
    scheme = HTTPBearer(auto_error=False, description="the token from api.token_file")
    check = bearer_guard(token)

    async def guard(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scheme)],
    ) -> None:
        check(credentials)

    return guard


def bearer_or_api_key_dependency(token: str) -> Callable[..., Awaitable[None]]:
    """The token check of the Anthropic-native routes: Anthropic's SDKs send the key as
    ``x-api-key`` (or, given an auth token, as a bearer token): either one, if it is
    ``token``, lets the request in; a refusal is the same 401 as ``bearer_guard``'s."""
    scheme = HTTPBearer(auto_error=False, description="the token from api.token_file")
    header = APIKeyHeader(
        name="x-api-key", auto_error=False, description="the token from api.token_file"
    )
    check = bearer_guard(token)

    async def guard(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scheme)],
        api_key: Annotated[str | None, Depends(header)],
    ) -> None:
        if api_key is not None and hmac.compare_digest(api_key.encode(), token.encode()):
            return
        check(credentials)

    return guard
