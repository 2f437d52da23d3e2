"""Plausible bodies per OpenAI batch endpoint: the request body of a seeded batch's synthetic
input line, and the 200 body of an output line.

Enough shape that a consumer parsing a body the way it parses the live endpoint's does not
trip; not a model of what the endpoint computes. The token numbers are the shared simulator's
(``batchwatch.simulator.bodies.Answer``: drawn from a CRC-32 of ``"<batch id>:<index>"``, so
the same request of the same batch always reports the same usage), and ``tokens`` is the one
place that says what each endpoint reports: the batch's ``usage`` is the sum of ``tokens``
over its succeeded requests, so it always equals the sum over its output file. Chat
completions, completions and the Responses API report input and output tokens; embeddings
input only; image generation a fixed 50 output tokens a picture; moderations nothing.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import Any

from batchwatch.simulator.bodies import Answer

DEFAULT_MODELS = {
    "/v1/responses": "gpt-4o-mini",
    "/v1/chat/completions": "gpt-4o-mini",
    "/v1/completions": "gpt-3.5-turbo-instruct",
    "/v1/embeddings": "text-embedding-3-small",
    "/v1/moderations": "omni-moderation-latest",
    "/v1/images/generations": "gpt-image-1",
    "/v1/images/edits": "gpt-image-1",
}
_EMBEDDING_DIMENSIONS = 8
_BYTES_PER_DIMENSION = 10
_IMAGE_TOKENS = 50


def default_model(endpoint: str) -> str:
    return DEFAULT_MODELS.get(endpoint, "gpt-4o-mini")


def tokens(endpoint: str, answer: Answer) -> tuple[int, int]:
    """(input, output) tokens one succeeded request of ``endpoint`` reports."""
    if endpoint == "/v1/moderations":
        return 0, 0
    usage = answer.usage(completion=endpoint != "/v1/embeddings")
    if endpoint.startswith("/v1/images/"):
        return usage["prompt_tokens"], _IMAGE_TOKENS
    return usage["prompt_tokens"], usage["completion_tokens"]


# --- Request bodies (synthetic input lines) --------------------------------------------------


def request_body(endpoint: str, n: int) -> dict[str, Any]:
    """The body of synthetic request ``n`` (1-based) of a batch on ``endpoint``."""
    question = f"Synthetic question {n}: what is the best French cheese?"
    model = default_model(endpoint)
    if endpoint == "/v1/responses":
        return {"model": model, "input": question}
    if endpoint == "/v1/completions":
        return {"model": model, "prompt": question, "max_tokens": 100}
    if endpoint in ("/v1/embeddings", "/v1/moderations"):
        return {"model": model, "input": f"Synthetic passage {n}."}
    if endpoint.startswith("/v1/images/"):
        return {"model": model, "prompt": f"Synthetic picture {n} of a cheese board"}
    return {"model": model, "messages": [{"role": "user", "content": question}],
            "max_tokens": 100}  # fmt: skip


# --- Response bodies (output lines) ------------------------------------------------------------


def response_body(endpoint: str, answer: Answer) -> dict[str, Any]:
    """The 200 body of ``endpoint`` for one request."""
    return _RESPONSE_BODIES.get(endpoint, _chat_completion)(answer)


def _completion_usage(endpoint: str, answer: Answer) -> dict[str, Any]:
    prompt, completion = tokens(endpoint, answer)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


def _chat_completion(answer: Answer) -> dict[str, Any]:
    content = answer.text(f"Simulated answer {answer.n}.")
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None,
                               "annotations": []}  # fmt: skip
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": _completion_usage("/v1/chat/completions", answer),
        "system_fingerprint": None,
    }


def _text_completion(answer: Answer) -> dict[str, Any]:
    text = answer.text(f"Simulated completion {answer.n}.")
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": answer.created,
        "model": answer.model,
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "usage": _completion_usage("/v1/completions", answer),
    }


def _response(answer: Answer) -> dict[str, Any]:
    prompt, completion = tokens("/v1/responses", answer)
    text = answer.text(f"Simulated answer {answer.n}.")
    content = {"type": "output_text", "text": text, "annotations": []}
    message = {"type": "message", "id": f"msg_{uuid.uuid4().hex}", "status": "completed",
               "role": "assistant", "content": [content]}  # fmt: skip
    return {
        "id": f"resp_{uuid.uuid4().hex}",
        "object": "response",
        "created_at": answer.created,
        "status": "completed",
        "model": answer.model,
        "output": [message],
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion,
        },
    }


def _embedding(answer: Answer) -> dict[str, Any]:
    size = _EMBEDDING_DIMENSIONS + answer.pad_bytes // _BYTES_PER_DIMENSION
    vector = [round(math.sin(answer.n + i), 6) for i in range(size)]
    prompt, _ = tokens("/v1/embeddings", answer)
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "model": answer.model,
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


def _moderation(answer: Answer) -> dict[str, Any]:
    categories = ("harassment", "hate", "self-harm", "sexual", "violence")
    result = {
        "flagged": False,
        "categories": dict.fromkeys(categories, False),
        "category_scores": dict.fromkeys(categories, 0.0001),
    }
    return {"id": f"modr-{uuid.uuid4().hex}", "model": answer.model, "results": [result]}


def _image(answer: Answer) -> dict[str, Any]:
    prompt, completion = tokens("/v1/images/generations", answer)
    picture = {"b64_json": "U2ltdWxhdGVk" + "A" * answer.pad_bytes}  # "Simulated", padded
    return {
        "created": answer.created,
        "data": [picture],
        "usage": {"input_tokens": prompt, "output_tokens": completion,
                  "total_tokens": prompt + completion},
    }  # fmt: skip


_RESPONSE_BODIES: dict[str, Callable[[Answer], dict[str, Any]]] = {
    "/v1/responses": _response,
    "/v1/chat/completions": _chat_completion,
    "/v1/completions": _text_completion,
    "/v1/embeddings": _embedding,
    "/v1/moderations": _moderation,
    "/v1/images/generations": _image,
    "/v1/images/edits": _image,
}
