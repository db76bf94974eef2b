"""The job codec: JSON in, typed objects out, never pickle.

A job's body is `LLMRequest` JSON. An outcome is `{"ok": LLMResponse}` or `{"error": LLMError.to_dict()}`.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from schemas.errors import LLMError, MalformedJobError, error_from_dict
from schemas.request import LLMRequest, explain
from schemas.response import LLMResponse

__all__ = ["decode_outcome", "decode_request", "encode_error", "encode_response"]


def decode_request(raw: str | bytes | None) -> LLMRequest:
    """The request stored in a job; `MalformedJobError` says what is wrong with it."""
    if raw is None:
        raise MalformedJobError("job has no body")
    try:
        return LLMRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise MalformedJobError(f"job is not a valid request: {explain(exc)}") from None


_OK = '{"ok":'


def encode_response(response: LLMResponse) -> str:
    return _OK + response.model_dump_json() + "}"


def encode_error(error: LLMError) -> str:
    return json.dumps({"error": error.to_dict()})


def decode_outcome(raw: str | bytes) -> LLMResponse | LLMError:
    """The stored outcome as a response, or as the typed error the worker raised."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    if text.startswith(_OK) and text.endswith("}"):  # as `encode_response` writes it: parsed by pydantic at once
        return LLMResponse.model_validate_json(text[len(_OK) : -1])
    data = json.loads(text)
    if "ok" in data:
        return LLMResponse.model_validate(data["ok"])
    return error_from_dict(data["error"])
