"""The provider key taken out of an error's message: whole, in pieces, masked by the provider, cut at the limit."""

from __future__ import annotations

import pytest

from schemas.catalog import Provider
from schemas.errors import AuthenticationError, BadRequestError, RateLimitedError
from workers.providers import failures, redaction

P = Provider.OPENAI


def test_redact_removes_the_key_and_keeps_class_and_details() -> None:
    err = failures.provider_error(RateLimitedError, P, "bad key sk-live-123 given", status_code=429, retry_after=2.0)

    clean = redaction.redact(err, "sk-live-123")

    assert type(clean) is RateLimitedError
    assert "sk-live-123" not in clean.message
    assert "sk-live-123" not in str(clean)
    assert clean.details == err.details
    assert redaction.redact(clean, "sk-live-123") is clean


def test_redact_removes_a_key_cut_by_the_length_limit() -> None:
    key = "sk-live-0123456789abcdef"
    err = failures.provider_error(BadRequestError, P, "x" * 490 + f" key {key} rejected")
    kept = err.message.removesuffix("...").rsplit(" ", 1)[1]  # the part of the key before the cut
    assert kept and key.startswith(kept) and key not in err.message

    clean = redaction.redact(err, key)

    assert kept not in clean.message and clean.message.endswith(" key [redacted]...")


def test_redact_removes_the_key_as_the_provider_masked_it() -> None:
    key = "sk-svcacct-0123456789r-IL"
    masked = f"Incorrect API key provided: sk-svcac{'*' * 40}r-IL. Stars of another ab***cd stay."
    err = failures.provider_error(AuthenticationError, P, masked, status_code=401)

    clean = redaction.redact(err, key)

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
    err = failures.provider_error(AuthenticationError, P, f"bad key {shown}", status_code=401)

    clean = redaction.redact(err, key)

    assert clean.message == f"openai 401: bad key {expected}"
