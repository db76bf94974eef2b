"""What the three adapters share: the response they build, and the failures that look the same for every SDK
(HTTP status, Retry-After, a dropped connection or a timeout, a body we cannot read)."""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, cast

import aiohttp
import httpx2

from schemas.catalog import Provider
from schemas.errors import (
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    NotFoundError,
    OverloadedError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
)
from schemas.request import LLMRequest
from schemas.response import FinishReason, LLMResponse, Usage

__all__ = [
    "CAUGHT",
    "class_for_status",
    "class_for_type",
    "json_object",
    "provider_error",
    "redact",
    "response",
    "retry_after",
    "sse_events",
    "transport_or_unreadable",
    "truncated",
]

_TRANSPORT: tuple[type[Exception], ...] = (httpx2.TransportError, aiohttp.ClientError, OSError)
"""A dropped or refused connection, or a timeout (`TimeoutError`, asyncio's and aiohttp's included, is an OSError)."""
_UNREADABLE: tuple[type[Exception], ...] = (
    ValueError,  # json.JSONDecodeError, pydantic.ValidationError, google-genai UnknownApiResponseError
    TypeError,
    AttributeError,  # openai returns a non-JSON 200 body as `str`
    KeyError,
    IndexError,
    httpx2.DecodingError,
)
CAUGHT: tuple[type[Exception], ...] = _TRANSPORT + _UNREADABLE
"""What leaves an SDK besides its own errors; each adapter catches these plus its SDK's base error."""

_BY_STATUS: dict[int, type[ProviderError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    408: ProviderTimeoutError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitedError,
    529: OverloadedError,
}
_BY_TYPE: tuple[tuple[str, type[ProviderError]], ...] = (
    ("rate_limit", RateLimitedError),
    ("resource_exhausted", RateLimitedError),
    ("overloaded", OverloadedError),
    ("authentication", AuthenticationError),
    ("permission", AuthenticationError),
    ("not_found", NotFoundError),
    ("invalid_request", BadRequestError),
    ("timeout", ProviderTimeoutError),
)
_MAX_MESSAGE = 500


def response(
    request: LLMRequest,
    provider: Provider,
    model: str,
    content: str,
    usage: Usage,
    finish_reason: FinishReason,
    started: float,
) -> LLMResponse:
    """The normalised response; `started` is the `time.perf_counter()` taken just before the provider call."""
    return LLMResponse(
        content=content,
        usage=usage,
        latency_ms=(time.perf_counter() - started) * 1000.0,
        provider=provider,
        model=model,
        finish_reason=finish_reason,
        request_id=request.request_id,
        trace_id=request.trace_id,
        source_agent=request.source_agent,
        session_id=request.session_id,
    )


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


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncGenerator[tuple[str, str]]:
    """The events of a `text/event-stream` body as `(event, data)`, each dispatched at its blank line, as the
    SSE standard says: an event cut off before its blank line is not an event. Comments and `id:` /
    `retry:` fields are ignored; several `data:` lines join with a newline; a line may end in LF, CRLF or CR.

    Read from the body's bytes a block (one event) at a time: the SDKs' line iterators cost several
    async-generator steps per line, and an Anthropic token is three lines. Each byte is looked at once
    (a chunk is searched from where the last one ended), however finely a long event is cut."""
    buffer = bytearray()
    cr = False  # the last chunk ended in CR, held back: it may be half of a CRLF
    async for chunk in chunks:
        if cr or b"\r" in chunk:  # one line ending for all
            chunk = b"\r" + chunk if cr else chunk
            cr = chunk.endswith(b"\r")
            chunk = (chunk[:-1] if cr else chunk).replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        start = max(len(buffer) - 1, 0)  # a blank line may begin with the buffer's last byte
        buffer += chunk
        taken = 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            event, data = _sse_fields(buffer[taken:end])
            taken = start = end + 2
            if data is not None:
                yield event, data
        del buffer[:taken]


def _sse_fields(block: bytearray) -> tuple[str, str | None]:
    """One event's type and data (None: the block has no `data:` line, so it is no event)."""
    event, data = "", list[str]()
    for line in block.decode(errors="replace").split("\n"):  # undecodable bytes become U+FFFD, as in the SDKs
        if line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
        elif line.startswith("event:"):
            event = line[7:] if line.startswith("event: ") else line[6:]
    return event, "\n".join(data) if data else None


def provider_error(
    cls: type[ProviderError],
    provider: Provider,
    message: str,
    *,
    status_code: int | None = None,
    retry_after: float | None = None,
) -> ProviderError:
    """`cls` with a message that names the provider (and the HTTP status when there was one)."""
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    prefix = f"{provider} {status_code}" if status_code else str(provider)
    return cls(f"{prefix}: {message}", provider=provider.value, status_code=status_code, retry_after=retry_after)


def redact(error: ProviderError, secret: str) -> ProviderError:
    """The same error without `secret` in its message (a provider may echo the key it was sent), nor any
    piece of it of `_FRAGMENT` characters or more (a key shown in part: `sk-SENTI...bc123xyz`, a suffix), nor
    the key as the provider masked it (OpenAI's `sk-svcac****r-IL`: its ends are ours), nor the part of it
    left where the message was cut at its length limit."""
    message = _MASKED.sub(lambda m: "[redacted]" if _ends_of(secret, m[1], m[2]) else m[0], error.message)
    message = _without_fragments(message, secret)
    if message.endswith("..."):
        head = message[:-3]
        cut = next((n for n in range(min(len(secret), len(head)), 3, -1) if head.endswith(secret[:n])), 0)
        if cut:
            message = head[:-cut] + "[redacted]..."
    return error if message == error.message else type(error)(message, **error.details)


_FRAGMENT = 8  # the shortest piece of a key redacted wherever it appears
_MASKED = re.compile(r"([\w-]*)\*{3,}([\w-]*)")  # a key with its middle starred out


def _without_fragments(text: str, secret: str) -> str:
    """`text` with every run of characters covered by pieces of `secret` at least `_FRAGMENT` long replaced."""
    if len(secret) < _FRAGMENT:
        return text.replace(secret, "[redacted]") if secret else text
    pieces = {secret[i : i + _FRAGMENT] for i in range(len(secret) - _FRAGMENT + 1)}
    kept, end = [], 0  # `end`: where the text not yet copied starts
    covered_to = -1  # the end of the run of redacted characters being built
    for i in range(len(text) - _FRAGMENT + 1):
        if text[i : i + _FRAGMENT] in pieces:
            if i > covered_to:  # a new run starts here
                kept.append(text[end:i])
                kept.append("[redacted]")
            covered_to = i + _FRAGMENT
            end = covered_to
    kept.append(text[end:])
    return "".join(kept)


def _ends_of(secret: str, head: str, tail: str) -> bool:
    return (
        bool(head or tail) and len(head) + len(tail) < len(secret) and secret.startswith(head) and secret.endswith(tail)
    )


def class_for_status(status: int) -> type[ProviderError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ProviderUnavailableError
    if status >= 400:
        return BadRequestError
    return MalformedResponseError  # a 2xx/3xx the SDK would not accept


def class_for_type(*names: object) -> type[ProviderError]:
    """The class for an error reported inside a 200 stream, from its type/code/status names."""
    text = " ".join(str(n) for n in names if n).lower()
    for needle, cls in _BY_TYPE:
        if needle in text:
            return cls
    return ProviderUnavailableError


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait, from `retry-after-ms` or `retry-after` (seconds or an HTTP date); None when absent."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def truncated(provider: Provider, what: str) -> ProviderError:
    """A stream that ended without its proper end: never hand back a silently cut answer."""
    return provider_error(ProviderUnavailableError, provider, f"stream ended before {what}")


def transport_or_unreadable(provider: Provider, exc: BaseException, *, timeout: bool = False) -> ProviderError:
    """A connection failure or timeout, judged by the innermost transport error in the cause chain (the SDKs and
    the aiohttp bridge re-wrap them, e.g. a server disconnect arrives as a "connect timeout"); otherwise a
    response we could not read. `timeout` is the verdict when the chain holds no transport error at all."""
    verdict = _timeout_verdict(exc)
    if verdict is None and isinstance(exc, _UNREADABLE):
        return provider_error(MalformedResponseError, provider, f"unreadable response ({_describe(exc)})")
    if verdict is None:
        verdict = timeout
    cls = ProviderTimeoutError if verdict else ProviderUnavailableError
    what = "timed out" if verdict else "connection failed"
    return provider_error(cls, provider, f"{what} ({_describe(exc)})")


def _timeout_verdict(exc: BaseException) -> bool | None:
    """True for a timeout, False for another transport error, None for neither: the innermost one decides."""
    verdict: bool | None = None
    current: BaseException | None = exc
    for _ in range(10):  # `raise ... from` chains; bounded in case one loops
        if current is None:
            break
        if isinstance(current, (TimeoutError, httpx2.TimeoutException)):
            verdict = True
        elif isinstance(current, _TRANSPORT):
            verdict = False
        current = current.__cause__
    return verdict


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
