"""Chat-completions messages as the fleet's: roles, content (text, or text and image parts), an assistant's
`tool_calls` and a `tool` message's `tool_call_id`; and the tool-call ids this face hands out.

A text message (a role and a string) takes the short path: nothing else is looked at. A field or part the
fleet cannot carry is refused with an `InvalidRequestError` naming it (`param`), never dropped.

Gemini signs a call (its `thoughtSignature`) and refuses the next turn without it, and an OpenAI client sends
back only what the API has: the signature rides in the call's id, `<id>__thought__<signature>` (LiteLLM's
form), and is taken out again on the way in, from the assistant's calls and from the tool results' ids.
"""

from __future__ import annotations

from typing import Any

from schemas.errors import InvalidRequestError

__all__ = ["SIGNED", "call_id", "messages", "unsupported"]

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
MESSAGE_FIELDS = {
    "user": frozenset({"role", "content"}),
    "system": frozenset({"role", "content"}),
    "developer": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "reasoning_content", "reasoning_signature"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}
"""What a message of each role takes (null counts as absent); `reasoning_*` are this face's extensions."""
SIGNED = "__thought__"
"""Between a call's id and its provider's signature, in the ids this face hands out."""


def unsupported(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def call_id(identifier: str, signature: str | None) -> str:
    """The id a client sees for a call: the fleet's, with the provider's signature when it has one."""
    return identifier if signature is None else f"{identifier}{SIGNED}{signature}"


def messages(given: Any) -> list[dict[str, Any]]:
    """The fleet's messages (as dicts `LLMRequest` validates) for a body's `messages`."""
    if not isinstance(given, list):
        raise InvalidRequestError("messages must be a list of messages", param="messages")
    out = []
    for i, message in enumerate(given):
        if not isinstance(message, dict):
            raise InvalidRequestError(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = message.get("role")
        if role not in ROLES:
            roles = ", ".join(ROLES)
            raise unsupported(f"messages[{i}].role", f"role {role!r} is not supported ({roles})")
        content = message.get("content")
        if len(message) == 2 and isinstance(content, str):  # the usual message: a role and its text
            out.append({"role": ROLES[role], "content": content})
        else:
            out.append(_message(message, role, f"messages[{i}]"))
    return out


def _message(message: dict[str, Any], role: str, where: str) -> dict[str, Any]:
    extra = sorted(k for k, v in message.items() if v is not None and k not in MESSAGE_FIELDS[role])
    if extra:
        raise unsupported(f"{where}.{extra[0]}", f"{role} message field(s) not supported: {', '.join(extra)}")
    content = message.get("content")
    out: dict[str, Any] = {"role": ROLES[role], "content": "" if content is None else _content(content, where)}
    if message.get("tool_calls") is not None:
        out["tool_calls"] = _calls(message["tool_calls"], f"{where}.tool_calls")
    if message.get("tool_call_id") is not None:
        out["tool_call_id"] = _plain_id(message["tool_call_id"])
    if message.get("reasoning_content") is not None:
        out["reasoning"] = message["reasoning_content"]
    if message.get("reasoning_signature") is not None:
        out["reasoning_signature"] = message["reasoning_signature"]
    return out


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    """Text parts alone are joined into one text (as they always were); with an image, the parts themselves."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequestError(f"{where}.content must be a string or a list of parts", param=f"{where}.content")
    parts = [_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    if all(part["type"] == "text" for part in parts):
        return "\n".join(part["text"] for part in parts)
    return parts


def _part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind != "image_url":
        raise unsupported(where, f"{where}: content part of type {kind!r} is not supported (text, image_url)")
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str):
        raise InvalidRequestError(f"{where}.image_url.url must be a string", param=f"{where}.image_url.url")
    other = sorted(k for k, v in image.items() if k != "url" and not (k == "detail" and v in (None, "auto")))
    if other:
        raise unsupported(
            f"{where}.image_url.{other[0]}", f"{where}.image_url.{other[0]} is not supported (url, detail auto)"
        )
    if not url.startswith("data:"):
        return {"type": "image", "url": url}
    head, _, data = url[5:].partition(",")
    media_type, _, encoding = head.partition(";")
    if encoding != "base64" or not data:
        raise InvalidRequestError(
            f"{where}.image_url.url: a data URL is data:<media type>;base64,<data>", param=f"{where}.image_url.url"
        )
    return {"type": "image", "data": data, "media_type": media_type}


def _calls(calls: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(calls, list):
        raise InvalidRequestError(f"{where} must be a list of tool calls", param=where)
    out = []
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise unsupported(f"{where}[{j}]", "a tool call is {id, type: function, function: {name, arguments}}")
        identifier, _, signature = str(call.get("id") or "").partition(SIGNED)
        out.append(
            {
                "id": identifier,
                "name": function.get("name"),
                "arguments": function.get("arguments") or "",
                **({"signature": signature} if signature else {}),
            }
        )
    return out


def _plain_id(given: Any) -> Any:
    return given.partition(SIGNED)[0] if isinstance(given, str) else given
