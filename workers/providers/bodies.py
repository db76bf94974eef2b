"""A provider's JSON body read as the object it must be, with half a surrogate pair escaped alone mended."""

from __future__ import annotations

import json
import re
from typing import Any, cast

__all__ = ["json_object"]


def json_object(raw: str | bytes) -> dict[str, Any]:
    """A response body (or an SSE event's data) as the JSON object it must be (`ValueError` when it is not
    JSON, `TypeError` when it is not an object).

    The adapters read the SDKs' raw responses (`client.post(..., cast_to=httpx2.Response)`,
    `with_streaming_response`, google-genai's `async_request` / `async_request_streamed`): the SDK still
    sends the request and raises its typed errors for an HTTP error status, but no typed model is built for
    the answer, which is most of an SDK's CPU per response and per streamed chunk (research/sdk-cost.md).
    The normalised result is the same, as the tests check against the providers' published transcripts.

    JSON may escape half of a surrogate pair alone (`"\\ud83d"`), which Python decodes to a string no UTF-8
    encoder takes: such halves become U+FFFD, so that the answer can still be stored and sent."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    if _SURROGATE_ESCAPE.search(raw if isinstance(raw, bytes) else raw.encode()):
        return cast("dict[str, Any]", _mended(data))
    return data


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _mended(value: Any) -> Any:
    """`value` with every lone surrogate in its strings replaced by U+FFFD (pairs stay as they are)."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        return [_mended(v) for v in value]
    if isinstance(value, dict):
        return {_mended(k): _mended(v) for k, v in value.items()}
    return value
