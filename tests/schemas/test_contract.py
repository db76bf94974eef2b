"""The contract: requests, responses, errors, catalog, codec, keys."""

from __future__ import annotations

import pickle

import pytest
from pydantic import ValidationError

import schemas
from jobstore import Keys
from schemas.catalog import Provider, catalog, resolve_model
from schemas.codec import decode_outcome, decode_request, encode_error, encode_response
from schemas.errors import (
    InvalidRequestError,
    LLMError,
    MalformedJobError,
    OverloadedError,
    RateLimitedError,
    UnknownModelError,
    error_from_dict,
)
from schemas.events import DeltaEvent, DoneEvent, decode_event
from schemas.request import LLMRequest, Message, validate_for_model
from schemas.response import LLMResponse, Usage


def _request(**kw: object) -> LLMRequest:
    return LLMRequest(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}], **kw)  # type: ignore[arg-type]


def test_public_surface() -> None:
    assert set(schemas.__all__) == {name for name in dir(schemas) if not name.startswith("_")} - {
        "agents",
        "catalog",
        "codec",
        "errors",
        "events",
        "json_schema",
        "keys",
        "policy",
        "request",
        "selection",
        "response",
        "settings",
    }


def test_request_ids_and_trace_default() -> None:
    a, b = _request(), _request()
    assert a.request_id != b.request_id and a.trace_id == a.request_id
    traced = _request(trace_id="trace-1", request_id="r-1")
    assert (traced.request_id, traced.trace_id) == ("r-1", "trace-1")
    assert isinstance(traced.messages[0], Message)  # plain dicts become Messages


def test_digest_tells_bodies_apart() -> None:
    a = _request(request_id="same")
    assert a.digest() == LLMRequest.model_validate_json(a.model_dump_json()).digest()
    assert a.digest() != _request(request_id="same", temperature=0.5).digest()


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"messages": []}, "messages"),
        ({"temperature": 3.0}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"request_id": "has space"}, "request_id"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_requests_say_what_is_wrong(fields: dict[str, object], where: str) -> None:
    body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}], **fields}
    with pytest.raises(ValidationError, match=where):
        LLMRequest.model_validate(body)


def test_provider_rules() -> None:
    assert validate_for_model(_request()).provider is Provider.OPENAI
    with pytest.raises(InvalidRequestError, match="reasoning model"):
        validate_for_model(LLMRequest(model="gpt-5", messages=[{"role": "user", "content": "x"}], temperature=0.2))
    with pytest.raises(InvalidRequestError, match="Anthropic model .* takes no temperature"):
        validate_for_model(
            LLMRequest(model="claude-haiku-4-5", messages=[{"role": "user", "content": "x"}], temperature=0.5)
        )
    with pytest.raises(InvalidRequestError, match="takes no temperature"):  # a fallback passes the same check
        validate_for_model(_request(temperature=0.5), "claude-haiku-4-5")
    assert validate_for_model(_request(temperature=1.5), "gpt-4.1").provider is Provider.OPENAI
    with pytest.raises(InvalidRequestError, match="takes no temperature"):  # Google's newest models take none
        validate_for_model(_request(temperature=1.5), "gemini-3.8-flash")
    with pytest.raises(InvalidRequestError, match="user or assistant"):
        validate_for_model(LLMRequest(model="gemini-3.8-flash", messages=[{"role": "system", "content": "x"}]))


def test_catalog_maps_every_name_to_one_provider() -> None:
    names = [n for m in catalog().models for n in (m.id, *m.aliases)]
    assert len(names) == len(set(names))
    spec = [
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-5",
        "gpt-5-mini",
        "claude-3-5-sonnet",
        "claude-3-5-haiku",
        "claude-3-opus",
        "gemini-2.0-flash-exp",
        "gemini-1.5-pro",
        "gemini-1.5-flash",
    ]
    assert all(resolve_model(n) for n in spec)
    assert resolve_model("claude-3-opus").status == "retired"
    assert resolve_model("gpt-4.1-mini").id == "gpt-4.1-mini-2025-04-14"
    assert {m.provider for m in catalog().models} == set(Provider)


def test_unknown_model_names_it_and_suggests() -> None:
    with pytest.raises(UnknownModelError, match="'gpt-4.1-mni'.*did you mean gpt-4.1-mini") as caught:
        resolve_model("gpt-4.1-mni")
    assert caught.value.model == "gpt-4.1-mni" and not caught.value.retryable


def test_errors_cross_the_wire_as_the_same_type() -> None:
    err = RateLimitedError("slow down", provider="openai", status_code=429, retry_after=2.5)
    back = error_from_dict(err.to_dict())
    assert type(back) is RateLimitedError and back.retryable and back.retry_after == 2.5
    assert back.message == "slow down" and back.status_code == 429
    assert type(pickle.loads(pickle.dumps(err))) is RateLimitedError
    assert error_from_dict({"type": "FromTheFuture", "message": "m"}).__class__ is LLMError
    assert OverloadedError("x", retryable=False).retryable is False
    with pytest.raises(AttributeError):
        _ = err.nothing_here


def test_codec_round_trips_and_refuses_garbage() -> None:
    request = _request()
    assert decode_request(request.model_dump_json()) == request
    for raw, match in ((None, "no body"), (b"{not json", "not a valid request"), (b'{"model": "x"}', "messages")):
        with pytest.raises(MalformedJobError, match=match):
            decode_request(raw)
    response = LLMResponse(
        content="c",
        usage=Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
        latency_ms=1.0,
        provider=Provider.GEMINI,
        model="m",
        finish_reason="stop",
        request_id=request.request_id,
        trace_id=request.trace_id,
    )
    assert decode_outcome(encode_response(response)) == response
    decoded = decode_outcome(encode_error(OverloadedError("busy", provider="anthropic")))
    assert isinstance(decoded, OverloadedError) and decoded.provider == "anthropic"


def test_events_are_typed_by_their_type_field() -> None:
    assert decode_event(DeltaEvent(seq=1, text="a").model_dump_json()) == DeltaEvent(seq=1, text="a")
    raw = (
        '{"type": "done", "seq": 2, "response": {"content": "", "usage": {}, "latency_ms": 0, "provider": "openai",'
        ' "model": "m", "finish_reason": "stop", "request_id": "r", "trace_id": "r"}}'
    )
    assert isinstance(decode_event(raw), DoneEvent)


def test_keys_are_built_from_one_prefix() -> None:
    keys = Keys("p")
    names = [
        keys.queue("openai"),
        keys.request("r"),
        keys.claimed("w"),
        keys.workers("gemini"),
        keys.reply("c"),
        keys.tokens("r"),
        keys.events("r"),
        keys.control("anthropic"),
        keys.delayed("openai"),
        keys.slots("openai"),
        keys.held("w"),
        keys.cooldown("openai"),
        keys.circuit("openai"),
        keys.health("openai"),
        keys.rate("openai"),
        keys.dead(),
        keys.gateway_tokens(),
    ]
    assert all(n.startswith("p:") for n in names) and len(set(names)) == len(names)
