"""The error-code table: every typed fleet error as the gateway answers it, a JSON-RPC application code and an
HTTP status, and the two bodies that carry it (a JSON-RPC `error`, an OpenAI-shaped `{"error": ...}`).

An error class takes the row of its nearest listed ancestor (`OverloadedError` that of `ProviderError`). The
README's table is this one; a test checks that they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.errors import (
    BudgetExceededError,
    DeadlineExceededError,
    FleetUnavailableError,
    InvalidRequestError,
    LLMError,
    ModelNotAllowedError,
    ModelRetiredError,
    ProviderError,
    QueueFullError,
    RateLimitedError,
    RequestCancelledError,
    RequestConflictError,
    RequestNotFoundError,
    ResultTimeoutError,
    UnknownModelError,
)

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "TABLE",
    "Row",
    "http_body",
    "row_of",
    "rpc_data",
]

# JSON-RPC 2.0's own codes
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


@dataclass(frozen=True, slots=True)
class Row:
    code: int
    """The JSON-RPC application code (the range -32000..-32099 the specification leaves to the server)."""
    status: int
    """The HTTP status of the REST and OpenAI-compatible routes."""
    kind: str
    """The OpenAI error `type`, which the openai SDK and the tools built on it read."""
    meaning: str


TABLE: dict[type[LLMError], Row] = {
    LLMError: Row(-32000, 500, "server_error", "any other fleet error (`data.type` names it)"),
    InvalidRequestError: Row(-32001, 400, "invalid_request_error", "the request breaks a rule"),
    UnknownModelError: Row(-32002, 404, "invalid_request_error", "the model is not in the catalog"),
    ModelRetiredError: Row(-32003, 410, "invalid_request_error", "the model is retired (data names its replacement)"),
    RequestConflictError: Row(-32004, 409, "invalid_request_error", "the request_id exists with another body"),
    ModelNotAllowedError: Row(-32005, 403, "permission_error", "the allowed-models policy refuses the model"),
    RequestNotFoundError: Row(-32006, 404, "not_found_error", "no request with that id (or its result expired)"),
    ResultTimeoutError: Row(-32007, 504, "timeout_error", "no result in the time waited (the request goes on)"),
    DeadlineExceededError: Row(-32007, 504, "timeout_error", "the request's own time budget ran out"),
    QueueFullError: Row(-32008, 503, "overloaded_error", "the provider's queue is at its bound; retry later"),
    BudgetExceededError: Row(-32009, 402, "insufficient_quota", "the token's source_agent spent its daily budget"),
    FleetUnavailableError: Row(-32010, 503, "server_error", "Redis could not be reached in time"),
    RequestCancelledError: Row(-32011, 409, "cancelled", "the request was cancelled"),
    ProviderError: Row(-32012, 502, "api_error", "the provider failed (`data.type`: which way; `retryable`)"),
    RateLimitedError: Row(-32013, 429, "rate_limit_error", "the provider rate-limited the request (retry_after)"),
}


def row_of(error: LLMError) -> Row:
    """The row of the error's nearest listed class."""
    for cls in type(error).__mro__:
        if cls in TABLE:
            return TABLE[cls]
    return TABLE[LLMError]


def rpc_data(error: LLMError, *, request_id: str | None, trace_id: str | None) -> dict[str, Any]:
    """A JSON-RPC error's `data`: the error's type, retryable, details, request_id and trace_id."""
    info = error.to_dict()
    info.pop("message")
    info.setdefault("request_id", request_id)
    info.setdefault("trace_id", trace_id)
    return info


def http_body(error: LLMError, *, request_id: str | None, trace_id: str | None) -> dict[str, Any]:
    """The OpenAI error shape (`message`, `type`, `param`, `code`), with the fleet's type, retryable, request_id
    and trace_id beside them."""
    data = rpc_data(error, request_id=request_id, trace_id=trace_id)
    return {
        "error": {
            "message": error.message,
            "type": row_of(error).kind,
            "param": data.pop("param", None),
            "code": data.pop("type"),
            **data,
        }
    }
