"""The failures that look the same for every SDK: the error class for an HTTP status or an error type named
inside a stream, Retry-After, a dropped connection or a timeout, a body we cannot read, a stream cut short."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

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

__all__ = [
    "CAUGHT",
    "class_for_status",
    "class_for_type",
    "provider_error",
    "retry_after",
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
