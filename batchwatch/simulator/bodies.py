"""Plausible bodies per batch endpoint (``ApiEndpoint``, docs/mistral-api.md §1.4): the
request body of a seeded job's synthetic input line, and the response body of an output line.

Enough shape that a consumer parsing a body the way it parses the live endpoint's does not
trip; not a model of what the endpoint computes.

* Usage. The endpoints that report it (chat and FIM completions, embeddings, conversations,
  transcriptions) get ``usage: {prompt_tokens, completion_tokens, total_tokens}`` whose
  numbers vary per request, from a CRC-32 of ``"<job id>:<request index>"``: the same request
  of the same job always gets the same numbers, and sums over a file mean something.
  ``prompt_tokens`` is 20 to 99, ``completion_tokens`` 10 to 129 plus a token per 4 characters of
  padding (0 for embeddings), and ``total_tokens`` their sum. OCR reports
  ``usage_info: {pages_processed: 1}``; moderations and classifications report no usage.
* Padding (``pad_bytes``, for big output files): that many characters of filler text are
  appended to the answer's text (the assistant message, the OCR page's markdown, the
  transcript), or about that many bytes of extra dimensions to an embedding. Moderation and
  classification answers have no free text and are not padded.
"""

from __future__ import annotations

import math
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

DEFAULT_MODEL = "mistral-small-latest"
_FILLER = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
_EMBEDDING_DIMENSIONS = 8
_BYTES_PER_DIMENSION = 10  # ", -0.123456": what one more dimension adds to a line


def request_seed(job_id: str, index: int) -> int:
    """The per-request number that usage and the error status are drawn from."""
    return zlib.crc32(f"{job_id}:{index}".encode())


@lru_cache(maxsize=8)
def filler(size: int) -> str:
    """``size`` characters of plain text, which JSON encodes one byte a character."""
    return (_FILLER * (size // len(_FILLER) + 1))[:size]


# --- Request bodies (synthetic input lines) --------------------------------------------------


def request_body(endpoint: str, model: str | None, n: int) -> dict[str, Any]:
    """The body of synthetic request ``n`` (1-based) of a job on ``endpoint``. ``model`` is
    left out when the job names one (docs/mistral-api.md §6)."""
    body = _REQUEST_BODIES.get(endpoint, _chat_request)(n)
    return body if model is not None else {"model": DEFAULT_MODEL, **body}


def _question(n: int) -> str:
    return f"Synthetic question {n}: what is the best French cheese?"


def _chat_request(n: int) -> dict[str, Any]:
    return {"max_tokens": 100, "messages": [{"role": "user", "content": _question(n)}]}


def _fim_request(n: int) -> dict[str, Any]:
    return {"prompt": f"def synthetic_{n}(values):\n", "suffix": "    return total\n",
            "max_tokens": 64}  # fmt: skip


def _embedding_request(n: int) -> dict[str, Any]:
    return {"input": [f"Synthetic passage {n} to embed."]}


def _moderation_request(n: int) -> dict[str, Any]:
    return {"input": [f"Synthetic text {n} to moderate."]}


def _chat_moderation_request(n: int) -> dict[str, Any]:
    return {"input": [{"role": "user", "content": _question(n)}]}


def _classification_request(n: int) -> dict[str, Any]:
    return {"input": f"Synthetic text {n} to classify."}


def _chat_classification_request(n: int) -> dict[str, Any]:
    return {"input": {"messages": [{"role": "user", "content": _question(n)}]}}


def _ocr_request(n: int) -> dict[str, Any]:
    url = f"https://example.com/synthetic-{n}.pdf"
    return {"document": {"type": "document_url", "document_url": url}}


def _conversation_request(n: int) -> dict[str, Any]:
    return {"inputs": _question(n), "store": False}


def _transcription_request(n: int) -> dict[str, Any]:
    return {"file_url": f"https://example.com/synthetic-{n}.mp3", "language": "en"}


_REQUEST_BODIES: dict[str, Callable[[int], dict[str, Any]]] = {
    "/v1/chat/completions": _chat_request,
    "/v1/fim/completions": _fim_request,
    "/v1/embeddings": _embedding_request,
    "/v1/moderations": _moderation_request,
    "/v1/chat/moderations": _chat_moderation_request,
    "/v1/classifications": _classification_request,
    "/v1/chat/classifications": _chat_classification_request,
    "/v1/ocr": _ocr_request,
    "/v1/conversations": _conversation_request,
    "/v1/audio/transcriptions": _transcription_request,
}


# --- Response bodies (output lines) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What one response body is built from."""

    model: str
    n: int  # the request's 1-based index
    created: int  # epoch seconds
    seed: int  # ``request_seed``
    pad_bytes: int = 0

    def usage(self, *, completion: bool = True) -> dict[str, int]:
        prompt = 20 + self.seed % 80
        generated = 10 + (self.seed >> 8) % 120 + math.ceil(self.pad_bytes / 4)
        generated = generated if completion else 0
        return {"prompt_tokens": prompt, "completion_tokens": generated,
                "total_tokens": prompt + generated}  # fmt: skip

    def text(self, start: str) -> str:
        return start + filler(self.pad_bytes)


def response_body(endpoint: str, answer: Answer) -> dict[str, Any]:
    """The 200 body of ``endpoint`` for one request."""
    return _RESPONSE_BODIES.get(endpoint, _chat_completion)(answer)


def _chat_completion(answer: Answer) -> dict[str, Any]:
    content = answer.text(f"Simulated answer {answer.n}.")
    message = {"role": "assistant", "content": content, "tool_calls": None}
    return {
        "id": uuid.uuid4().hex,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": answer.usage(),
    }


def _embedding(answer: Answer) -> dict[str, Any]:
    size = _EMBEDDING_DIMENSIONS + answer.pad_bytes // _BYTES_PER_DIMENSION
    vector = [round(math.sin(answer.n + i), 6) for i in range(size)]
    return {
        "id": uuid.uuid4().hex,
        "object": "list",
        "model": answer.model,
        "data": [{"object": "embedding", "embedding": vector, "index": 0}],
        "usage": answer.usage(completion=False),
    }


def _moderation(answer: Answer) -> dict[str, Any]:
    categories = ("sexual", "hate_and_discrimination", "violence_and_threats", "selfharm")
    return {
        "id": uuid.uuid4().hex,
        "model": answer.model,
        "results": [
            {
                "categories": dict.fromkeys(categories, False),
                "category_scores": dict.fromkeys(categories, 0.001),
            }
        ],
    }


def _ocr(answer: Answer) -> dict[str, Any]:
    markdown = answer.text(f"# Simulated page {answer.n}\n\n")
    page = {"index": 0, "markdown": markdown, "images": [], "dimensions": None}
    return {"model": answer.model, "pages": [page], "usage_info": {"pages_processed": 1}}


def _conversation(answer: Answer) -> dict[str, Any]:
    entry = {"object": "entry", "type": "message.output", "role": "assistant",
             "content": answer.text(f"Simulated answer {answer.n}.")}  # fmt: skip
    return {
        "object": "conversation.response",
        "conversation_id": f"conv_{uuid.uuid4().hex}",
        "outputs": [entry],
        "usage": answer.usage(),
    }


def _transcription(answer: Answer) -> dict[str, Any]:
    text = answer.text(f"Simulated transcript {answer.n}.")
    return {"model": answer.model, "text": text, "language": "en", "segments": [],
            "usage": answer.usage()}  # fmt: skip


_RESPONSE_BODIES: dict[str, Callable[[Answer], dict[str, Any]]] = {
    "/v1/chat/completions": _chat_completion,
    "/v1/fim/completions": _chat_completion,
    "/v1/embeddings": _embedding,
    "/v1/moderations": _moderation,
    "/v1/chat/moderations": _moderation,
    "/v1/classifications": _moderation,
    "/v1/chat/classifications": _moderation,
    "/v1/ocr": _ocr,
    "/v1/conversations": _conversation,
    "/v1/audio/transcriptions": _transcription,
}
