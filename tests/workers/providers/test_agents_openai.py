"""The OpenAI adapter's agents' fields: tools, tool calls (whole and streamed), structured output, images and
reasoning, against OpenAI's recorded transcripts (tests/fixtures/transcripts/README.md)."""

from __future__ import annotations

import json

from schemas.agents import NamedTool, Tool, ToolCall
from schemas.catalog import Provider, resolve_model
from schemas.request import Message
from schemas.response import Usage
from tests.workers.providers.replay import collect_items, make_request
from workers.providers.normalised import ReasoningDelta, ToolCallDelta
from workers.providers.openai_agents import add_agent_fields

P = Provider.OPENAI
GPT4O = resolve_model("gpt-4o")
REASONING = resolve_model("gpt-5-mini")
WEATHER = Tool(
    name="GetWeatherArgs",
    description="Get the temperature for the given country/city combo",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CALLS = [
    ToolCall(
        id="call_fdNz3vOBKYgOIpMdWotB9MjY",
        name="GetWeatherArgs",
        arguments='{"city": "Edinburgh", "country": "GB", "units": "c"}',
    ),
    ToolCall(
        id="call_h1DWI1POMJLb0KwIyQHWXD4p", name="get_stock_price", arguments='{"ticker": "AAPL", "exchange": "NASDAQ"}'
    ),
]


async def test_recorded_parallel_tool_calls_come_back_whole(server, make_adapter) -> None:
    server.reply("openai/chat_completions.nonstream.parallel_tool_calls.sdk-test.json")

    response = await make_adapter(P).complete(make_request(GPT4O.id, tools=[WEATHER]), GPT4O)

    assert response.finish_reason == "tool_calls"
    assert response.tool_calls == CALLS
    assert response.content == ""
    assert response.usage == Usage(prompt_tokens=149, completion_tokens=60, total_tokens=209, reasoning_tokens=0)


async def test_recorded_streamed_tool_calls_are_relayed_as_deltas_and_assembled(server, make_adapter) -> None:
    server.reply("openai/chat_completions.stream.parallel_tool_calls.sdk-test.sse")

    items, final = await collect_items(make_adapter(P).stream(make_request(GPT4O.id, tools=[WEATHER]), GPT4O))

    assert all(isinstance(i, ToolCallDelta) for i in items)
    firsts = [i for i in items if isinstance(i, ToolCallDelta) and i.id]
    assert [(d.index, d.id, d.name) for d in firsts] == [
        (0, "call_JMW1whyEaYG438VE1OIflxA2", "GetWeatherArgs"),
        (1, "call_DNYTawLBoN8fj3KN6qU9N1Ou", "get_stock_price"),
    ]
    for index, call in enumerate(final.tool_calls):  # the fragments, joined, are each call's arguments
        fragments = "".join(i.arguments for i in items if isinstance(i, ToolCallDelta) and i.index == index)
        assert fragments == call.arguments and json.loads(call.arguments)
    assert [c.id for c in final.tool_calls] == [d.id for d in firsts]
    assert json.loads(final.tool_calls[0].arguments) == {"city": "Edinburgh", "country": "GB", "units": "c"}
    assert (final.finish_reason, final.content, final.usage.total_tokens) == ("tool_calls", "", 209)


async def test_tools_and_their_results_are_sent_in_chat_completions_form(server, make_adapter) -> None:
    server.reply("openai/chat_completions.nonstream.structured_output.sdk-test.json")
    messages = [
        Message(
            role="user",
            content=[{"type": "text", "text": "What is here?"}, {"type": "image", "url": "https://x/a.png"}],
        ),
        Message(role="user", content=[{"type": "image", "data": "aGk=", "media_type": "image/png"}]),
        Message(role="assistant", content="", tool_calls=CALLS[:1]),
        Message(role="tool", content="12 C", tool_call_id=CALLS[0].id),
    ]
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    request = make_request(
        GPT4O.id,
        messages=messages,
        tools=[WEATHER],
        tool_choice=NamedTool(name="GetWeatherArgs"),
        parallel_tool_calls=False,
        response_format={"type": "json_schema", "json_schema": schema, "name": "Location", "strict": True},
    )

    response = await make_adapter(P).complete(request, GPT4O)

    body = server.last.body
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is here?"},
                {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
            ],
        },
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": CALLS[0].id,
                    "type": "function",
                    "function": {"name": CALLS[0].name, "arguments": CALLS[0].arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": CALLS[0].id, "content": "12 C"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": WEATHER.name, "description": WEATHER.description, "parameters": WEATHER.parameters},
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "GetWeatherArgs"}}
    assert body["parallel_tool_calls"] is False
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Location", "schema": schema, "strict": True},
    }
    assert json.loads(response.content) == {"city": "San Francisco", "temperature": 65, "units": "f"}
    assert response.tool_calls == []


async def test_recorded_streamed_structured_output_is_text(server, make_adapter) -> None:
    server.reply("openai/chat_completions.stream.structured_output.sdk-test.sse")
    request = make_request(GPT4O.id, response_format={"type": "json_object"})

    items, final = await collect_items(make_adapter(P).stream(request, GPT4O))

    assert all(isinstance(i, str) for i in items) and "".join(items) == final.content  # type: ignore[arg-type]
    assert json.loads(final.content)["city"] == "San Francisco"
    assert server.last.body["response_format"] == {"type": "json_object"}


async def test_reasoning_is_an_effort_and_a_budget_comes_to_one(server, make_adapter) -> None:
    adapter = make_adapter(P)
    for reasoning, effort in (
        ({"effort": "high"}, "high"),
        ({"budget_tokens": 2048}, "low"),
        ({"budget_tokens": 8000}, "medium"),
        ({"budget_tokens": 9000}, "high"),
    ):
        server.reply("openai/chat_completions.nonstream.response.json")
        await adapter.complete(make_request(REASONING.id, reasoning=reasoning, tool_choice="none"), REASONING)
        assert server.last.body["reasoning_effort"] == effort
        assert server.last.body["tool_choice"] == "none"


async def test_reasoning_text_of_a_compatible_server_is_kept_apart(server, make_adapter) -> None:
    """vLLM and other OpenAI-compatible servers send their reasoning as `reasoning_content` (OpenAI sends none)."""
    sse = (
        b'data: {"model":"m","choices":[{"index":0,"delta":{"reasoning_content":"Think"},"finish_reason":null}]}\n\n'
        b'data: {"model":"m","choices":[{"index":0,"delta":{"reasoning_content":"ing."},"finish_reason":null}]}\n\n'
        b'data: {"model":"m","choices":[{"index":0,"delta":{"content":"Yes"},"finish_reason":null}]}\n\n'
        b'data: {"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"id":"c1","type":"function",'
        b'"function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}\n\n'
        b"data: [DONE]\n\n"
    )
    server.reply(sse, sse=True)
    items, final = await collect_items(make_adapter(P).stream(make_request(REASONING.id), REASONING))
    assert items == [ReasoningDelta("Think"), ReasoningDelta("ing."), "Yes", ToolCallDelta(0, "c1", "f", "{}")]
    assert (final.content, final.reasoning) == ("Yes", "Thinking.")
    assert final.tool_calls == [ToolCall(id="c1", name="f", arguments="{}")]  # a lone call sent with no index
    body = json.loads(
        b'{"model":"m","choices":[{"index":0,"message":{"content":"Yes","reasoning_content":"Hm."},"finish_reason":"stop"}]}'
    )
    server.reply(json.dumps(body).encode())
    response = await make_adapter(P).complete(make_request(REASONING.id), REASONING)
    assert (response.content, response.reasoning) == ("Yes", "Hm.")


def test_a_strict_tool_is_sent_strict() -> None:
    params: dict[str, object] = {}
    strict = WEATHER.model_copy(update={"strict": True})
    add_agent_fields(make_request(GPT4O.id, tools=[strict, WEATHER]), params, reasoning_model=False)
    sent = [tool["function"] for tool in params["tools"]]  # type: ignore[attr-defined]
    assert [f.get("strict") for f in sent] == [True, None]
