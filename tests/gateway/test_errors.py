"""The error-code table: each typed error's row, and the README's copy of the table."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.errors import TABLE, http_body, row_of, rpc_data
from schemas.errors import (
    LLMError,
    OverloadedError,
    ProviderError,
    RateLimitedError,
    RequestCancelledError,
    UnknownModelError,
    WorkerLostError,
    error_from_dict,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def test_an_error_takes_the_row_of_its_nearest_listed_class() -> None:
    assert row_of(OverloadedError("busy", provider="anthropic")) is TABLE[ProviderError]
    assert row_of(RateLimitedError("slow down")).code == -32013  # listed itself, before ProviderError
    assert row_of(UnknownModelError("x")).status == 404
    assert row_of(WorkerLostError("gone")) is TABLE[LLMError]
    assert row_of(error_from_dict({"type": "NoSuchError", "message": "?"})) is TABLE[LLMError]


def test_codes_are_application_codes_outside_the_reserved_standard_ones() -> None:
    assert all(-32099 <= row.code <= -32000 for row in TABLE.values())


def test_bodies_carry_type_retryable_request_and_trace() -> None:
    error = RateLimitedError("slow down", provider="openai", retry_after=2.0)
    data = rpc_data(error, request_id="r-1", trace_id="t-1")
    assert data == {
        "type": "RateLimitedError",
        "retryable": True,
        "provider": "openai",
        "retry_after": 2.0,
        "request_id": "r-1",
        "trace_id": "t-1",
    }
    body = http_body(RequestCancelledError("stopped", request_id="own"), request_id="other", trace_id=None)
    assert body["error"]["request_id"] == "own"  # the error's own details stand
    assert (body["error"]["type"], body["error"]["code"], body["error"]["param"]) == (
        "cancelled",
        "RequestCancelledError",
        None,
    )


def test_the_readme_table_is_this_table() -> None:
    section = README.read_text().split("## Gateway", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (-320\d\d) \| `(\w+)` \| (\d{3}) \| `(\w+)` \| (.+?) \|$", section, re.MULTILINE)
    assert rows == [(str(row.code), cls.__name__, str(row.status), row.kind, row.meaning) for cls, row in TABLE.items()]
