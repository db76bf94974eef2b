"""The Gemini adapter's agents' fields: function declarations and calls (with ids of ours, stable, mapped back to
names on the way in), thought signatures sent back with their calls, thoughts kept apart, JSON output, images
and thinking levels, against Google's recorded transcripts (tests/fixtures/transcripts/README.md)."""

from __future__ import annotations

import json

from schemas.agents import NamedTool, Tool, ToolCall
from schemas.catalog import Provider, resolve_model
from schemas.request import Message
from tests.workers.providers.replay import collect_items, make_request
from workers.providers.gemini_agents import call_id
from workers.providers.normalised import ReasoningDelta, ToolCallDelta

P = Provider.GEMINI
FLASH = resolve_model("gemini-3.8-flash")
OLD = resolve_model("gemini-2.5-flash-lite")
NOW = Tool(name="now", description="The current date and time")
UNARY = "gemini/firebase-testdata.unary-success-thinking-function-call-thought-summary-signature.json"
STREAM = "gemini/firebase-testdata.streaming-success-thinking-function-call-thought-summary-signature.txt"


async def test_a_recorded_call_with_its_thoughts_and_signature(server, make_adapter) -> None:
    server.reply(UNARY)

    response = await make_adapter(P).complete(make_request(FLASH.id, tools=[NOW]), FLASH)

    (call,) = response.tool_calls
    assert (call.id, call.name, call.arguments) == (call_id("req-1", 0), "now", "{}")
    assert call.signature and call.signature.startswith("CtQOAVSoXO74PmYr9AFurEIJ")
    assert response.finish_reason == "tool_calls"  # Gemini says STOP; the calls say what it means
    assert response.content == "" and response.reasoning.startswith("**Thinking Through the New Year's Eve")  # type: ignore[union-attr]
    assert (response.usage.reasoning_tokens, response.usage.completion_tokens) == (501, 509)
    assert call_id("req-1", 0) == call_id("req-1", 0) != call_id("req-2", 0)  # stable, and apart per request


async def test_a_recorded_streamed_call_comes_whole_after_the_thoughts(server, make_adapter) -> None:
    server.reply(STREAM)

    items, final = await collect_items(make_adapter(P).stream(make_request(FLASH.id, tools=[NOW]), FLASH))

    *thoughts, piece = items
    assert all(isinstance(t, ReasoningDelta) for t in thoughts) and len(thoughts) == 2
    assert isinstance(piece, ToolCallDelta) and (piece.index, piece.name, piece.arguments) == (0, "now", "{}")
    assert final.tool_calls == [
        ToolCall(id=piece.id or "", name="now", arguments="{}", signature=piece.signature)
    ]  # the signature comes on the streamed piece too, so a relay of the pieces alone keeps it
    assert final.tool_calls[0].signature.startswith("CiIBVKhc7vB")  # type: ignore[union-attr]
    assert final.reasoning == "".join(t.text for t in thoughts)  # type: ignore[union-attr]
    assert final.finish_reason == "tool_calls" and final.usage.reasoning_tokens == 168


async def test_the_loop_goes_back_with_names_signatures_and_results(server, make_adapter) -> None:
    server.reply(UNARY)
    adapter = make_adapter(P)
    asked = await adapter.complete(make_request(FLASH.id, tools=[NOW]), FLASH)
    (call,) = asked.tool_calls
    messages = [
        Message(role="system", content="Be brief."),
        Message(
            role="user",
            content=[
                {"type": "text", "text": "Days to New Year's Eve?"},
                {"type": "image", "url": "https://x/cal.png"},
            ],
        ),
        asked.message(),
        Message(role="tool", content='{"now": "2026-12-07"}', tool_call_id=call.id),
        Message(role="tool", content="also this", tool_call_id=call.id),
        Message(role="user", content=[{"type": "image", "data": "aGk=", "media_type": "image/gif"}]),
    ]
    server.reply(UNARY)
    await adapter.complete(
        make_request(
            FLASH.id,
            messages=messages,
            tools=[NOW],
            tool_choice=NamedTool(name="now"),
            reasoning={"budget_tokens": 5000},
        ),
        FLASH,
    )

    body = server.last.body
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "Days to New Year's Eve?"},
                {"fileData": {"mimeType": "image/png", "fileUri": "https://x/cal.png"}},
            ],
        },
        {"role": "model", "parts": [{"functionCall": {"name": "now", "args": {}}, "thoughtSignature": call.signature}]},
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "now", "response": {"now": "2026-12-07"}}},
                {"functionResponse": {"name": "now", "response": {"result": "also this"}}},
            ],
        },
        {"role": "user", "parts": [{"inlineData": {"mimeType": "image/gif", "data": "aGk="}}]},
    ]
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "now", "description": NOW.description, "parametersJsonSchema": NOW.parameters}
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["now"]}}
    assert body["generationConfig"]["thinkingConfig"] == {"includeThoughts": True, "thinkingLevel": "MEDIUM"}


async def test_json_output_choices_and_a_budget_for_gemini_2(server, make_adapter) -> None:
    adapter = make_adapter(P)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    for model, fields, generation, config in (
        (FLASH, {"response_format": {"type": "json_object"}}, {"responseMimeType": "application/json"}, None),
        (
            FLASH,
            {"response_format": {"type": "json_schema", "json_schema": schema}, "tools": [NOW], "tool_choice": "none"},
            {"responseMimeType": "application/json", "responseJsonSchema": schema},
            {"mode": "NONE"},
        ),
        (
            OLD,
            {"reasoning": {"effort": "high"}, "tools": [NOW], "tool_choice": "auto"},
            {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 16384}},
            {"mode": "AUTO"},
        ),
    ):
        server.reply(UNARY)
        await adapter.complete(make_request(model.id, **fields), model)
        sent = server.last.body
        assert {k: v for k, v in sent["generationConfig"].items() if k != "maxOutputTokens"} == generation
        assert sent.get("toolConfig") == (None if config is None else {"functionCallingConfig": config})
    server.reply(UNARY)
    await adapter.complete(make_request(FLASH.id, tools=[NOW], parallel_tool_calls=False), FLASH)
    assert "parallel" not in json.dumps(server.last.body)  # Gemini has no such switch: not sent
