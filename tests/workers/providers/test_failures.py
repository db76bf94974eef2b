"""The failure handling the three adapters share: error classes by status and type, Retry-After, a dropped
connection or a timeout, a body we cannot read, a bounded message naming the provider."""

from __future__ import annotations

import email.utils
import itertools
import json
import time

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
from workers.providers import failures

P = Provider.OPENAI


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
    assert failures.retry_after(headers) == seconds


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (failures.retry_after(httpx2.Headers({"Retry-After": when})) or 0) <= 30


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
    assert failures.class_for_status(status) is cls


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
    assert failures.class_for_type(*names) is cls


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
    err = failures.transport_or_unreadable(P, exc, timeout=timeout)
    assert type(err) is cls
    assert err.details == {"provider": "openai"}
    assert err.message.startswith("openai: ")


def test_provider_error_message_is_bounded_and_names_provider_and_status() -> None:
    err = failures.provider_error(BadRequestError, Provider.GEMINI, "x" * 2000, status_code=400, retry_after=None)
    assert err.message.startswith("gemini 400: xxx")
    assert len(err.message) < 600
    assert err.to_dict() == {
        "type": "BadRequestError",
        "message": err.message,
        "retryable": False,
        "provider": "gemini",
        "status_code": 400,
    }
