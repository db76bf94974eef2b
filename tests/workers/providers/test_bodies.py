"""A provider's JSON body: an object or malformed, with lone surrogate halves mended."""

from __future__ import annotations

import json

import pytest

from schemas.catalog import Provider
from schemas.errors import MalformedResponseError
from workers.providers import bodies, failures


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42"])
def test_a_json_body_that_is_not_an_object_is_malformed(body: bytes) -> None:
    with pytest.raises(TypeError) as caught:
        bodies.json_object(body)
    assert isinstance(failures.transport_or_unreadable(Provider.OPENAI, caught.value), MalformedResponseError)


@pytest.mark.parametrize("raw", [rb'{"t": ["a\ud83d b"], "\uDFFF": 1}', r'{"t": ["a\ud83d b"], "\uDFFF": 1}'])
def test_a_lone_surrogate_half_becomes_a_replacement_character(raw: str | bytes) -> None:
    """json.loads would hand back a string that no UTF-8 encoder takes (the answer could not be stored);
    a whole pair stays the character it encodes."""
    data = bodies.json_object(raw)
    assert data == {"t": ["a\ufffd b"], "\ufffd": 1}
    json.dumps(data, ensure_ascii=False).encode()  # would raise UnicodeEncodeError before
    assert bodies.json_object(r'{"t": "\ud83d\ude00"}') == {"t": "\U0001f600"}
