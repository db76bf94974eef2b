"""The abstraction alone, no network: our request validation and normalisation into the SDK's call, and
the provider's answer (its published response body, as the SDK hands it over raw) parsed and normalised into
an `LLMResponse`. p50 / p99 per provider; then each provider with tools: three tools offered (their schemas
checked), the answer a recorded tool call read back.

    python -m bench abstraction [--n 20000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.harness import pct
from schemas.agents import Tool
from schemas.request import LLMRequest, validate_for_model
from workers.providers import anthropic_adapter, gemini_adapter, openai_adapter
from workers.providers.base import trace_headers
from workers.providers.bodies import json_object

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "transcripts"
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
TOOLS = [
    Tool(
        name=name,
        description=f"the {name} of a place",
        parameters={
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
    )
    for name in ("weather", "time", "population")
]


def cases() -> dict[str, Callable[[], object]]:
    completion = (FIXTURES / "openai/chat_completions.nonstream.response.json").read_bytes()
    message = (FIXTURES / "anthropic/messages.nonstream.response.json").read_bytes()
    reply = (FIXTURES / "gemini/firebase-testdata.unary-success-basic-reply-short.json").read_bytes()

    def openai_case() -> object:
        request = LLMRequest(model="gpt-4.1-mini", messages=MESSAGES, trace_id="t", source_agent="a")
        model = validate_for_model(request)
        openai_adapter.request_body(request, model)
        return openai_adapter.read_response(request, model, json_object(completion), time.perf_counter())

    def anthropic_case() -> object:
        request = LLMRequest(model="claude-haiku-4-5", messages=MESSAGES, trace_id="t", source_agent="a")
        model = validate_for_model(request)
        anthropic_adapter.request_body(request, model, 4096)  # no client: only the mapping is measured
        return anthropic_adapter.read_response(request, model, json_object(message), time.perf_counter())

    def gemini_case() -> object:
        request = LLMRequest(model="gemini-3.8-flash", messages=MESSAGES, trace_id="t", source_agent="a")
        model = validate_for_model(request)
        gemini_adapter.request_body(request, model)
        trace_headers(request)  # the call's HTTP options (google-genai takes the headers apart from the body)
        return gemini_adapter.read_response(request, model, json_object(reply), time.perf_counter())

    return {"openai": openai_case, "anthropic": anthropic_case, "gemini": gemini_case, **tool_cases()}


def tool_cases() -> dict[str, Callable[[], object]]:
    """Each provider with tools: the request offers three (their schemas checked at validation), the answer is a
    recorded tool call."""
    calls = (FIXTURES / "openai/chat_completions.nonstream.parallel_tool_calls.sdk-test.json").read_bytes()
    loop = json.loads((FIXTURES / "anthropic/messages.tool_loop.sdk-test.json").read_bytes())
    use = json.dumps(loop[0]["response"]).encode()  # its first turn: text and a tool_use
    function = (
        FIXTURES / "gemini/firebase-testdata.unary-success-thinking-function-call-thought-summary-signature.json"
    ).read_bytes()

    def openai_case() -> object:
        request = LLMRequest(model="gpt-4.1-mini", messages=MESSAGES, trace_id="t", source_agent="a", tools=TOOLS)
        model = validate_for_model(request)
        openai_adapter.request_body(request, model)
        return openai_adapter.read_response(request, model, json_object(calls), time.perf_counter())

    def anthropic_case() -> object:
        request = LLMRequest(model="claude-haiku-4-5", messages=MESSAGES, trace_id="t", source_agent="a", tools=TOOLS)
        model = validate_for_model(request)
        anthropic_adapter.request_body(request, model, 4096)
        return anthropic_adapter.read_response(request, model, json_object(use), time.perf_counter())

    def gemini_case() -> object:
        request = LLMRequest(model="gemini-3.8-flash", messages=MESSAGES, trace_id="t", source_agent="a", tools=TOOLS)
        model = validate_for_model(request)
        gemini_adapter.request_body(request, model)
        trace_headers(request)
        return gemini_adapter.read_response(request, model, json_object(function), time.perf_counter())

    return {"openai + tools": openai_case, "anthropic + tools": anthropic_case, "gemini + tools": gemini_case}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench abstraction")
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args(argv)
    sys.stdout.write("| provider | p50 µs | p99 µs | mean µs |\n|---|---|---|---|\n")
    for name, case in cases().items():
        for _ in range(2000):
            case()
        samples = []
        for _ in range(args.n):
            t0 = time.perf_counter_ns()
            case()
            samples.append((time.perf_counter_ns() - t0) / 1000)
        sys.stdout.write(
            f"| {name} | {pct(samples, 50):.1f} | {pct(samples, 99):.1f} | {sum(samples) / len(samples):.1f} |\n"
        )
