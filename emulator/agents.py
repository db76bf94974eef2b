"""What agents ask of a model, as the emulator answers it: tool calls, JSON output, thinking, images.

Each wire format reads its request into an :class:`Agentic`; :func:`agent_reply` turns it (and the tags of the
last user message) into the deterministic :class:`~emulator.replies.Reply`:

- the last message is a tool result: the answer is text, ``Echo: Result:`` and the results' words;
- tools are offered and ``[[tool=NAME]]`` (or ``[[tool=A,B]]``) is written, or ``tool_choice`` forces a call
  (``required``: the first tool): the model calls those tools, with arguments built from each tool's schema
  (:func:`example`), and no text; ``parallel_tool_calls: false`` keeps the first call only;
- a JSON schema is asked for: the answer is :func:`example` of the schema, as JSON text; JSON mode:
  ``{"echo": "<the prompt's words>"}``;
- reasoning is asked for: the answer starts with thinking, :data:`THINKING`, counted as output tokens.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from emulator.provider import ApiError, Call, JsonObject
from emulator.replies import FRAGMENT, Agentic, PlannedCall, Reply, Tags, make_reply

THINKING = ("Let", " me", " think", " this", " through.")
_DATA_URL = re.compile(r"^data:(image/(?:png|jpeg|gif|webp));base64,(.*)$", re.DOTALL)


def agent_reply(call: Call, tags: Tags) -> Reply:
    """The reply to `call`: plain text (:func:`make_reply`) unless the call asks for more."""
    agent = call.agent
    prompt = call.prompt + " <image>" * agent.images
    if agent.answered is not None:
        reply = make_reply(f"Result: {agent.answered}", call.prompt_tokens, call.max_tokens, tags)
    elif calls := _planned_calls(agent, tags):
        reply = Reply((), "tool_calls", call.prompt_tokens, calls=calls)
    elif agent.schema is not None or agent.json_object:
        value = example(agent.schema) if agent.schema is not None else {"echo": " ".join(prompt.split()[:8])}
        text = json.dumps(value)
        reply = Reply(tuple(text[i : i + FRAGMENT] for i in range(0, len(text), FRAGMENT)), "stop", call.prompt_tokens)
    else:
        reply = make_reply(prompt, call.prompt_tokens, call.max_tokens, tags)
    if agent.thinking and reply.finish != "blocked":
        return Reply(reply.pieces, reply.finish, reply.prompt_tokens, calls=reply.calls, thinking=THINKING)
    return reply


def _planned_calls(agent: Agentic, tags: Tags) -> tuple[PlannedCall, ...]:
    if not agent.tools or agent.choice == "none":
        return ()
    names: tuple[str, ...] = tags.tools
    if agent.choice == "required" and not names:
        names = (next(iter(agent.tools)),)
    elif agent.choice not in ("auto", "required"):
        names = (agent.choice,)
    unknown = [name for name in names if name not in agent.tools]
    if unknown:
        raise ApiError(400, f"tool {unknown[0]!r} is not among the request's tools")
    if not agent.parallel:
        names = names[:1]
    return tuple(PlannedCall(name, json.dumps(_arguments(agent.tools[name]))) for name in names)


def _arguments(schema: Any) -> Any:
    """A call's arguments: an object, built from the tool's schema (none: no arguments)."""
    value = example(schema) if schema else {}
    return value if isinstance(value, dict) else {}


def example(schema: Any, name: str = "value", depth: int = 0) -> Any:
    """A value that matches `schema`, the same every time: the first enum value, every property of an object,
    one item in an array, a string naming its property, 1, 1.5, true or null."""
    if not isinstance(schema, dict) or depth > 16:
        return name
    if schema.get("enum"):
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example(schema[key][0], name, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    kind = kind.lower() if isinstance(kind, str) else kind  # Gemini's OpenAPI schemas write OBJECT, STRING
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {key: example(value, key, depth + 1) for key, value in properties.items()}
    if kind == "array":
        return [example(schema.get("items") or {}, name, depth + 1)]
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(str(kind), name)


def check_image(media_type: str | None, data: str | None, url: str | None) -> None:
    """An image part as the APIs check it: a http(s) URL, or base64 data of an image type they take."""
    if url is not None:
        if match := _DATA_URL.match(url):
            media_type, data = match[1], match[2]
        elif url.startswith(("http://", "https://")):
            return
        else:
            raise ApiError(400, "Invalid image URL: an http(s) URL or a base64 data URL of an image")
    if media_type not in ("image/png", "image/jpeg", "image/gif", "image/webp"):
        raise ApiError(400, f"Unsupported image media type: {media_type!r}")
    try:
        base64.b64decode(data or "", validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "Invalid image data: not base64") from None
    if not data:
        raise ApiError(400, "Invalid image data: empty")


def object_of(value: Any) -> JsonObject:
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}
