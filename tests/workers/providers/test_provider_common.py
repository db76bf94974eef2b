"""build_adapter, and the failure handling the three adapters share."""

from __future__ import annotations

import email.utils
import itertools
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx2
import pytest

from schemas.catalog import Provider
from schemas.errors import (
    AuthenticationError,
    BadRequestError,
    MalformedResponseError,
    NotFoundError,
    OverloadedError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
)
from tests.workers.providers.replay import make_settings
from workers.providers import _common, build_adapter
from workers.settings import WorkerSettings

P = Provider.OPENAI
ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("provider", "variable"),
    [
        (Provider.OPENAI, "OPENAI_API_KEY"),
        (Provider.ANTHROPIC, "ANTHROPIC_API_KEY"),
        (Provider.GEMINI, "GOOGLE_API_KEY"),
    ],
)
def test_build_adapter_without_a_key_names_the_variable(provider, variable) -> None:
    with pytest.raises(ValueError, match=variable):
        build_adapter(provider, WorkerSettings())


@pytest.mark.parametrize("provider", list(Provider))
async def test_build_adapter_gives_the_provider_s_adapter(provider) -> None:
    adapter = build_adapter(provider, make_settings(provider, "http://127.0.0.1:9"))
    assert adapter.provider is provider
    await adapter.aclose()


@pytest.mark.parametrize(
    ("provider", "sdk"),
    [(Provider.OPENAI, "openai"), (Provider.ANTHROPIC, "anthropic"), (Provider.GEMINI, "google.genai")],
)
def test_build_adapter_imports_only_its_own_sdk(provider, sdk) -> None:
    code = f"""
import sys
from schemas.catalog import Provider
from tests.workers.providers.replay import make_settings
from workers.providers import build_adapter
build_adapter(Provider({provider.value!r}), make_settings(Provider({provider.value!r}), "http://127.0.0.1:9"))
print(" ".join(sorted(m for m in ("openai", "anthropic", "google.genai") if m in sys.modules)))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == [sdk]


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        (None, None),
        ({}, None),
        ({"retry-after": "20"}, 20.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "20"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "2"}, 2.0),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "whenever"}, None),
    ],
)
def test_retry_after(headers, seconds) -> None:
    assert _common.retry_after(headers) == seconds


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (_common.retry_after(httpx2.Headers({"Retry-After": when})) or 0) <= 30


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (408, ProviderTimeoutError),
        (409, BadRequestError),
        (413, BadRequestError),
        (422, BadRequestError),
        (429, RateLimitedError),
        (500, ProviderUnavailableError),
        (502, ProviderUnavailableError),
        (503, ProviderUnavailableError),
        (504, ProviderUnavailableError),
        (529, OverloadedError),
        (204, MalformedResponseError),
    ],
)
def test_class_for_status(status, cls) -> None:
    assert _common.class_for_status(status) is cls


@pytest.mark.parametrize(
    ("names", "cls"),
    [
        (("overloaded_error",), OverloadedError),
        (("requests", "rate_limit_exceeded"), RateLimitedError),
        (("RESOURCE_EXHAUSTED",), RateLimitedError),
        (("invalid_request_error", None), BadRequestError),
        (("api_error",), ProviderUnavailableError),
        ((None,), ProviderUnavailableError),
    ],
)
def test_class_for_type(names, cls) -> None:
    assert _common.class_for_type(*names) is cls


def chained(*excs: BaseException) -> BaseException:
    """excs[0] raised from excs[1] raised from ..., as the SDKs and the aiohttp bridge re-wrap errors."""
    for outer, inner in itertools.pairwise(excs):
        outer.__cause__ = inner
    return excs[0]


@pytest.mark.parametrize(
    ("exc", "timeout", "cls"),
    [
        (httpx2.RemoteProtocolError("peer closed connection"), False, ProviderUnavailableError),
        (httpx2.ReadTimeout("timed out"), False, ProviderTimeoutError),
        (aiohttp.ClientPayloadError("Response payload is not completed"), False, ProviderUnavailableError),
        (aiohttp.ServerDisconnectedError(), False, ProviderUnavailableError),
        (TimeoutError(), False, ProviderTimeoutError),
        (ConnectionResetError(), False, ProviderUnavailableError),
        # the aiohttp bridge turns a server disconnect into a "connect timeout": the disconnect decides
        (
            chained(RuntimeError("Request timed out."), httpx2.ConnectTimeout(""), aiohttp.ServerDisconnectedError()),
            True,
            ProviderUnavailableError,
        ),
        (
            chained(RuntimeError("Request timed out."), httpx2.ReadTimeout(""), aiohttp.SocketTimeoutError()),
            False,
            ProviderTimeoutError,
        ),
        (RuntimeError("Request timed out."), True, ProviderTimeoutError),
        (RuntimeError("Connection error."), False, ProviderUnavailableError),
        (json.JSONDecodeError("Expecting value", "<html>", 0), False, MalformedResponseError),
        (AttributeError("'str' object has no attribute 'choices'"), False, MalformedResponseError),
        (httpx2.DecodingError("bad gzip"), False, MalformedResponseError),
    ],
)
def test_transport_or_unreadable(exc, timeout, cls) -> None:
    err = _common.transport_or_unreadable(P, exc, timeout=timeout)
    assert type(err) is cls
    assert err.details == {"provider": "openai"}
    assert err.message.startswith("openai: ")


def test_provider_error_message_is_bounded_and_names_provider_and_status() -> None:
    err = _common.provider_error(BadRequestError, Provider.GEMINI, "x" * 2000, status_code=400, retry_after=None)
    assert err.message.startswith("gemini 400: xxx")
    assert len(err.message) < 600
    assert err.to_dict() == {
        "type": "BadRequestError",
        "message": err.message,
        "retryable": False,
        "provider": "gemini",
        "status_code": 400,
    }


def test_redact_removes_the_key_and_keeps_class_and_details() -> None:
    err = _common.provider_error(RateLimitedError, P, "bad key sk-live-123 given", status_code=429, retry_after=2.0)

    clean = _common.redact(err, "sk-live-123")

    assert type(clean) is RateLimitedError
    assert "sk-live-123" not in clean.message
    assert "sk-live-123" not in str(clean)
    assert clean.details == err.details
    assert _common.redact(clean, "sk-live-123") is clean


def test_redact_removes_a_key_cut_by_the_length_limit() -> None:
    key = "sk-live-0123456789abcdef"
    err = _common.provider_error(BadRequestError, P, "x" * 490 + f" key {key} rejected")
    kept = err.message.removesuffix("...").rsplit(" ", 1)[1]  # the part of the key before the cut
    assert kept and key.startswith(kept) and key not in err.message

    clean = _common.redact(err, key)

    assert kept not in clean.message and clean.message.endswith(" key [redacted]...")


def test_redact_removes_the_key_as_the_provider_masked_it() -> None:
    key = "sk-svcacct-0123456789r-IL"
    masked = f"Incorrect API key provided: sk-svcac{'*' * 40}r-IL. Stars of another ab***cd stay."
    err = _common.provider_error(AuthenticationError, P, masked, status_code=401)

    clean = _common.redact(err, key)

    assert clean.message == "openai 401: Incorrect API key provided: [redacted]. Stars of another ab***cd stay."
    assert "r-IL" not in clean.message and type(clean) is AuthenticationError


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        ("sk-SENTI...bc123xyz", "[redacted]...[redacted]"),  # its ends, as some providers show a key
        ("...0123456789bc123xyz", "...[redacted]"),  # a suffix
        ("sk-SENTINEL-01", "[redacted]"),  # a prefix
        ("key=sk-SENTINEL-0123456789bc123xyz;", "key=[redacted];"),  # whole, between other text
        ("sk-SENT and bc123xy", "sk-SENT and bc123xy"),  # pieces under 8 characters stay
    ],
)
def test_redact_removes_every_piece_of_the_key_of_8_characters_or_more(shown: str, expected: str) -> None:
    key = "sk-SENTINEL-0123456789bc123xyz"
    err = _common.provider_error(AuthenticationError, P, f"bad key {shown}", status_code=401)

    clean = _common.redact(err, key)

    assert clean.message == f"openai 401: bad key {expected}"


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42"])
def test_a_json_body_that_is_not_an_object_is_malformed(body: bytes) -> None:
    with pytest.raises(TypeError) as caught:
        _common.json_object(body)
    assert isinstance(_common.transport_or_unreadable(Provider.OPENAI, caught.value), MalformedResponseError)


_SSE = (
    b": a comment\n"
    b'event: message_start\ndata: {"a": 1}\n\n'
    b"data: first line\ndata:second line\nid: 7\nretry: 10\n\n"
    b"event: ping\r\ndata: {}\r\n\r\n"
    b"data: \xff\xfe\rdata: after a CR\r\r"
    b"\n\n\n"
    b"data: cut off before its blank line\n"
)
_SSE_EVENTS = [
    ("message_start", '{"a": 1}'),
    ("", "first line\nsecond line"),
    ("ping", "{}"),
    ("", "\ufffd\ufffd\nafter a CR"),
]


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
async def test_sse_events_are_whole_however_the_body_is_cut(size: int) -> None:
    """Every chunking of the body gives the same events: a CRLF split over two chunks is one line end, an
    event ends at its blank line only, and an event cut off before it is not an event."""
    assert [e async for e in _common.sse_events(_chunks(_SSE, size))] == _SSE_EVENTS


@pytest.mark.parametrize("raw", [rb'{"t": ["a\ud83d b"], "\uDFFF": 1}', r'{"t": ["a\ud83d b"], "\uDFFF": 1}'])
def test_a_lone_surrogate_half_becomes_a_replacement_character(raw: str | bytes) -> None:
    """json.loads would hand back a string that no UTF-8 encoder takes (the answer could not be stored);
    a whole pair stays the character it encodes."""
    data = _common.json_object(raw)
    assert data == {"t": ["a\ufffd b"], "\ufffd": 1}
    json.dumps(data, ensure_ascii=False).encode()  # would raise UnicodeEncodeError before
    assert _common.json_object(r'{"t": "\ud83d\ude00"}') == {"t": "\U0001f600"}
