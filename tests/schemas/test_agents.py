"""The agents' fields of the contract: parts, tools, tool calls, structured output, reasoning, and the rules
checked before a request is queued."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from schemas.agents import (
    ImagePart,
    NamedTool,
    Reasoning,
    ResponseFormat,
    Tool,
    ToolCall,
    asks_for_agent_fields,
    check_agent_fields,
    serves,
)
from schemas.catalog import Capabilities, ModelInfo, Provider, catalog, resolve_model
from schemas.errors import InvalidRequestError
from schemas.json_schema import schema_problem
from schemas.request import LLMRequest, Message, digest_of, validate_for_model
from schemas.response import LLMResponse, Usage
from schemas.selection import ModelSelector

WEATHER = Tool(
    name="get_weather",
    description="The weather in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def _request(model: str = "gpt-4.1-mini", **kw: Any) -> LLMRequest:
    kw.setdefault("messages", [{"role": "user", "content": "hi"}])
    return LLMRequest(model=model, request_id="r-1", **kw)


def test_a_request_without_the_new_fields_is_written_as_before() -> None:
    # the JSON (and so the digest) of jobs queued before these fields existed: pinned, byte for byte
    before = (
        '{"model":"gpt-4.1-mini","messages":[{"role":"user","content":"hi"}],"temperature":null,"max_tokens":null,'
        '"stream":false,"request_id":"r-1","trace_id":"r-1","source_agent":null,"session_id":null,"fallbacks":[],'
        '"model_requested":null,"tier":null,"task_complexity":null,"provider_preference":[],"selection":null}'
    )
    assert _request().model_dump_json() == before
    assert _request().digest() == digest_of(before)
    assert LLMRequest.model_validate_json(before).model_dump_json() == before


def test_agent_fields_round_trip_and_change_the_digest() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    request = LLMRequest(
        model="gpt-4.1-mini",
        messages=[
            Message(role="user", content=[{"type": "text", "text": "what is this?"}, {"type": "image", "url": "u"}]),
            Message(role="assistant", content="", tool_calls=[call]),
            Message(role="tool", content="sunny", tool_call_id="call_1"),
        ],
        tools=[WEATHER],
        tool_choice=NamedTool(name="get_weather"),
        parallel_tool_calls=False,
        response_format=ResponseFormat(type="json_schema", json_schema={"type": "object"}, strict=True),
        request_id="r-1",
    )
    again = LLMRequest.model_validate_json(request.model_dump_json())
    assert again == request and again.digest() == request.digest() != _request().digest()
    assert again.messages[0].text == "what is this?" and again.messages[2].text == "sunny"
    assert '"signature"' not in request.model_dump_json()  # unset optional fields stay out


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ImagePart(), "url or base64 data"),
        (lambda: ImagePart(url="u", data="d", media_type="image/png"), "url or base64 data"),
        (lambda: ImagePart(data="aGk="), "media_type"),
        (lambda: Tool(name="has space"), "name"),
        (lambda: ResponseFormat(type="json_schema"), "json_schema is given"),
        (lambda: ResponseFormat(type="json_object", json_schema={}), "json_schema is given"),
        (lambda: Reasoning(), "one of them"),
        (lambda: Reasoning(effort="low", budget_tokens=2000), "one of them"),
        (lambda: Message(role="user", content=[{"type": "audio"}]), "audio"),
    ],
)
def test_malformed_parts_are_refused_by_the_model(make: Any, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        make()


def test_a_response_becomes_the_next_turns_assistant_message() -> None:
    call = ToolCall(id="c", name="get_weather", arguments="{}")
    response = LLMResponse(
        content="",
        usage=Usage(),
        latency_ms=1,
        provider=Provider.ANTHROPIC,
        model="m",
        finish_reason="tool_calls",
        request_id="r",
        trace_id="r",
        tool_calls=[call],
        reasoning="think",
        reasoning_signature="sig",
    )
    message = response.message()
    assert (message.role, message.tool_calls, message.reasoning, message.reasoning_signature) == (
        "assistant",
        [call],
        "think",
        "sig",
    )
    plain = response.model_copy(update={"tool_calls": [], "reasoning": None, "reasoning_signature": None})
    assert not {"tool_calls", "reasoning", "reasoning_signature"} & set(
        plain.model_dump(mode="json", exclude_unset=False)
    )


def _refused(request: LLMRequest, match: str, model: str | None = None) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        validate_for_model(request, model)


def test_tools_and_their_results_must_hold_together() -> None:
    validate_for_model(_request(tools=[WEATHER], tool_choice="required", parallel_tool_calls=True))
    _refused(_request(tools=[WEATHER, WEATHER]), "same name")
    _refused(_request(tool_choice="required"), "need tools")
    _refused(_request(parallel_tool_calls=True), "need tools")
    validate_for_model(_request(tool_choice="none"))
    _refused(_request(tools=[WEATHER], tool_choice=NamedTool(name="other")), "'other', which is not among")
    answer = Message(role="tool", content="x", tool_call_id="nope")
    _refused(_request(messages=[{"role": "user", "content": "q"}, answer]), "'nope' answers no tool call")
    _refused(_request(messages=[{"role": "tool", "content": "x"}]), r"messages\[0\]: a tool message")
    stray = Message(role="user", content="q", tool_calls=[ToolCall(id="c", name="n", arguments="{}")])
    _refused(_request(messages=[stray]), "only an assistant message")
    image = Message(role="assistant", content=[{"type": "image", "url": "u"}])
    _refused(_request(messages=[{"role": "user", "content": "q"}, image]), "images go in user messages")


@pytest.mark.parametrize(
    ("parameters", "match"),
    [
        ({"type": "objet"}, r"tools\[t\].parameters.type: 'objet' is not a JSON type"),
        ({"type": "string"}, '"type": "object"'),
        ({"type": "object", "properties": {"a": {"type": "int"}}}, r"properties.a.type"),
        ({"type": "object", "required": "a"}, "required: a list"),
        ({"type": "object", "properties": []}, "properties: an object of schemas"),
        ({"type": "object", "anyOf": []}, "anyOf: a non-empty list"),
        ({"type": "object", "properties": {"s": {"type": "string", "pattern": "("}}}, "not a regular expression"),
    ],
)
def test_a_tool_schema_that_is_no_json_schema_is_refused_at_submit(parameters: dict[str, Any], match: str) -> None:
    _refused(_request(tools=[Tool(name="t", parameters=parameters)]), match)


SCHEMAS: list[Any] = [
    {"type": "object", "properties": {"a": {"type": ["string", "null"]}}, "required": ["a"]},
    {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
    {"anyOf": [{"type": "string", "enum": ["a", "b"]}, {"$ref": "#/$defs/x"}], "$defs": {"x": True}},
    {"type": "object", "patternProperties": {"^x": {"type": "number", "multipleOf": 0.5}}},
    {"type": "object", "additionalProperties": False, "description": "d"},
    {"type": "strin"},
    {"type": ["string", "string"]},
    {"type": []},
    {"required": ["a", "a"]},
    {"required": [1]},
    {"enum": "a"},
    {"minLength": -1},
    {"maxItems": 1.5},
    {"minimum": "1"},
    {"multipleOf": 0},
    {"description": 3},
    {"pattern": "("},
    {"pattern": 1},
    {"items": [{"type": "string"}]},
    {"items": "x"},
    {"properties": {"a": 1}},
    {"patternProperties": {"(": {}}},
    {"oneOf": {}},
    {"allOf": [{"not": {"type": "nothing"}}]},
    [],
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_structural_check_agrees_with_the_meta_schema(schema: Any) -> None:
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
        meta_ok = True
    except jsonschema.SchemaError:
        meta_ok = False
    assert (schema_problem(schema) is None) == meta_ok, schema_problem(schema)


def test_a_schema_nested_too_deep_is_refused() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        schema = {"type": "array", "items": schema}
    assert "nested more than 32 deep" in str(schema_problem(schema))


def _info(provider: Provider = Provider.OPENAI, **capabilities: bool) -> ModelInfo:
    return ModelInfo(id="m-1", provider=provider, capabilities=Capabilities(**capabilities))


def test_a_capability_the_model_lacks_is_named() -> None:
    image = Message(role="user", content=[{"type": "image", "data": "aGk=", "media_type": "image/png"}])
    cases = [
        (_request(tools=[WEATHER]), _info(tools=False), "takes no tools"),
        (_request(messages=[image]), _info(vision=False), r"takes no images \(messages\[0\]\)"),
        (_request(response_format={"type": "json_schema", "json_schema": {}}), _info(), "no JSON schema"),
        (_request(reasoning={"effort": "low"}), _info(), "not a reasoning model"),
    ]
    for request, info, match in cases:
        with pytest.raises(InvalidRequestError, match=match):
            check_agent_fields(request, info)
    check_agent_fields(_request(messages=[image]), _info(vision=True))
    bad = {"type": "json_schema", "json_schema": {"type": 1}}
    _refused(_request(response_format=bad), "response schema is not valid: response_format.json_schema.type")


def test_each_providers_own_rules() -> None:
    claude = "claude-haiku-4-5"
    _refused(_request(claude, response_format={"type": "json_object"}), "no JSON mode")
    validate_for_model(_request("gemini-3.8-flash", response_format={"type": "json_object"}))
    _refused(_request(claude, reasoning={"budget_tokens": 500}), "less than Anthropic's least")
    _refused(_request(claude, reasoning={"budget_tokens": 2000}, max_tokens=1500), "less than max_tokens")
    forced = _request(claude, tools=[WEATHER], tool_choice="required", reasoning={"effort": "low"})
    _refused(forced, "no forced tool_choice")
    assert validate_for_model(_request(claude, reasoning={"budget_tokens": 2000})).id == resolve_model(claude).id
    validate_for_model(_request("gpt-5", reasoning={"budget_tokens": 500}))  # mapped to an effort
    strict = WEATHER.model_copy(update={"strict": True})
    _refused(_request("gemini-3.8-flash", tools=[strict]), "Gemini model, which has no strict tools")
    validate_for_model(_request(claude, tools=[strict]))
    assert '"strict"' not in _request(tools=[WEATHER]).model_dump_json()  # unset: left out of the job's JSON


def test_arguments_as_the_object_a_provider_takes_back() -> None:
    assert ToolCall(id="c", name="n", arguments='{"a": 1}').parsed_arguments() == {"a": 1}
    for sent in ("", "not json", "[1, 2]"):  # what a model wrote need not parse, nor be an object
        assert ToolCall(id="c", name="n", arguments=sent).parsed_arguments() == {}


def test_a_budget_and_an_effort_stand_for_each_other() -> None:
    assert [Reasoning(budget_tokens=b).as_effort() for b in (1024, 2048, 2049, 8192, 8193)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
    ]
    assert [Reasoning(effort=e).as_budget() for e in ("low", "medium", "high")] == [1024, 4096, 16384]
    assert (Reasoning(effort="high").as_effort(), Reasoning(budget_tokens=7).as_budget()) == ("high", 7)


def test_a_model_chosen_for_the_request_can_serve_it() -> None:
    """The producer's choice (`Governance.choose`) keeps to models that `serves` the request: JSON mode leaves
    Anthropic's out (it has none), so the fast tier's cheapest becomes another provider's."""
    json_mode = LLMRequest(
        messages=[{"role": "user", "content": "x"}], tier="fast", response_format={"type": "json_object"}
    )
    plain = LLMRequest(messages=[{"role": "user", "content": "x"}], tier="fast")
    assert asks_for_agent_fields(json_mode) and not asks_for_agent_fields(plain)
    image = Message(role="user", content=[{"type": "image", "url": "u"}])
    assert asks_for_agent_fields(LLMRequest(messages=[image], tier="fast"))
    anyone = ModelSelector(catalog().models).select(tier="fast")
    able = ModelSelector(catalog().models, permits=lambda m: serves(json_mode, m)).select(tier="fast")
    assert resolve_model(anyone.model).provider is Provider.ANTHROPIC
    assert all(resolve_model(m).provider is not Provider.ANTHROPIC for m in (able.model, *able.fallbacks))
    assert serves(plain, resolve_model(anyone.model))
