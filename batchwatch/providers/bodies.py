"""What every provider's error body has in common: a human message somewhere in it.

Standard library only: the CLI's client of the local daemon reads error bodies too.
"""

from __future__ import annotations

from typing import Any


def error_text(body: Any) -> str:
    """The human part of an error body: Mistral's ``message``, OpenAI's and Anthropic's
    ``error.message``, or FastAPI's ``detail`` (the local API's validation errors)."""
    if isinstance(body, dict):
        nested = body.get("error")
        if isinstance(nested, dict) and isinstance(nested.get("message"), str):
            return str(nested["message"])
        for key in ("message", "detail"):
            value = body.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, list) and value and isinstance(value[0], dict):
                first = value[0]
                where = ".".join(str(p) for p in first.get("loc", []))
                return f"{where}: {first.get('msg', '')}".strip(": ")
    return str(body)[:200] if body else ""
