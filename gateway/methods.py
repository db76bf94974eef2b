"""The JSON-RPC methods: `llm.complete`, `llm.submit`, `llm.result`, `llm.cancel`, `llm.select`, `llm.models`,
`llm.metrics`. Each takes its params by name (an object) or by position (an array, in the order `PARAMS` gives);
`llm.complete` and `llm.submit` take the `LLMRequest` fields themselves, or `{"request": {...}}`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.metrics import fleet_metrics
from gateway.state import Gateway, invalid
from gateway.trace import Caller
from schemas.catalog import Provider, catalog
from schemas.errors import InvalidRequestError, LLMError
from schemas.request import LLMRequest, Message
from schemas.selection import Complexity, Tier

__all__ = ["METHODS", "PARAMS", "InvalidParams"]

Method = Callable[[Gateway, Caller, Any], Awaitable[Any]]
P = TypeVar("P", bound=BaseModel)


class InvalidParams(Exception):
    """The params do not fit the method (JSON-RPC -32602)."""

    def __init__(self, error: InvalidRequestError) -> None:
        super().__init__(error.message)
        self.error = error

    def data(self, caller: Caller) -> dict[str, Any]:
        return {**self.error.to_dict(), "request_id": None, "trace_id": caller.trace_id}


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Wait(_Params):
    request_id: str
    timeout: float | None = Field(None, ge=0)


class _Cancel(_Params):
    request_id: str


class _Select(_Params):
    tier: Tier | None = None
    complexity: Complexity | None = None
    prefer: list[Provider] = Field(default_factory=list, max_length=3)


PARAMS: dict[str, tuple[str, ...]] = {
    "llm.complete": ("request", "timeout"),
    "llm.submit": ("request",),
    "llm.result": ("request_id", "timeout"),
    "llm.cancel": ("request_id",),
    "llm.select": ("tier", "complexity", "prefer"),
    "llm.models": (),
    "llm.metrics": (),
}


def _named(method: str, params: list[Any] | dict[str, Any]) -> dict[str, Any]:
    if isinstance(params, dict):
        return dict(params)
    names = PARAMS[method]
    if len(params) > len(names):
        raise InvalidParams(InvalidRequestError(f"{method} takes at most {len(names)} positional params"))
    return dict(zip(names, params, strict=False))


def _parse(model: type[P], params: dict[str, Any]) -> P:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise InvalidParams(invalid(exc, "params")) from None


def _request(caller: Caller, params: dict[str, Any]) -> LLMRequest:
    body = params.pop("request") if "request" in params else params
    if not isinstance(body, dict):
        raise InvalidParams(InvalidRequestError("request must be an object (the LLMRequest fields)"))
    try:
        return LLMRequest.model_validate(caller.apply(body))
    except ValidationError as exc:
        raise InvalidParams(invalid(exc, "request")) from None


def _tagged(error: LLMError, request: LLMRequest) -> LLMError:
    error.details.setdefault("request_id", request.request_id)
    error.details.setdefault("trace_id", request.trace_id)
    return error


async def _complete(gateway: Gateway, caller: Caller, params: Any) -> Any:
    named = _named("llm.complete", params)
    timeout = named.pop("timeout", None)
    if timeout is not None and (not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0):
        raise InvalidParams(InvalidRequestError("timeout must be a number of seconds above 0", param="timeout"))
    request = _request(caller, named)
    try:
        response = await gateway.client.complete(request, timeout=timeout)
    except LLMError as exc:
        gateway.metrics.relayed(request.model, None)
        raise _tagged(exc, request) from None
    gateway.metrics.relayed(request.model, response)
    return response.model_dump(mode="json")


async def _submit(gateway: Gateway, caller: Caller, params: Any) -> Any:
    request = _request(caller, _named("llm.submit", params))
    try:
        await gateway.client.submit(request)
    except LLMError as exc:
        raise _tagged(exc, request) from None
    return {"request_id": request.request_id, "trace_id": request.trace_id}


async def _result(gateway: Gateway, _caller: Caller, params: Any) -> Any:
    wait = _parse(_Wait, _named("llm.result", params))
    limit = gateway.settings.max_wait_s
    timeout = limit if wait.timeout is None else min(wait.timeout, limit)
    try:
        response = await gateway.client.result(wait.request_id, timeout=timeout)
    except LLMError as exc:
        exc.details.setdefault("request_id", wait.request_id)
        raise
    return response.model_dump(mode="json")


async def _cancel(gateway: Gateway, _caller: Caller, params: Any) -> Any:
    cancel = _parse(_Cancel, _named("llm.cancel", params))
    return {"request_id": cancel.request_id, "cancelled": await gateway.client.cancel(cancel.request_id)}


async def _select(gateway: Gateway, _caller: Caller, params: Any) -> Any:
    select = _parse(_Select, _named("llm.select", params))
    probe = LLMRequest(
        messages=[Message(role="user", content="-")],
        tier=select.tier,
        task_complexity=select.complexity,
        provider_preference=select.prefer,
    )
    if probe.tier is None and probe.task_complexity is None:
        raise InvalidParams(InvalidRequestError("llm.select needs a tier or a complexity", param="tier"))
    chosen = await gateway.client.choose(probe)
    assert chosen.selection is not None
    return chosen.selection.model_dump(mode="json")


async def _models(gateway: Gateway, _caller: Caller, params: Any) -> Any:
    _parse(_Params, _named("llm.models", params))
    policy = gateway.client.policy
    return [
        {
            "id": m.id,
            "provider": m.provider.value,
            "tier": m.tier,
            "status": m.lifecycle.status,
            "aliases": list(m.aliases),
            "allowed": m.lifecycle.status != "retired" and (policy is None or policy.permits(m)),
            "context_window": m.context_window,
            "max_output_tokens": m.max_output_tokens,
            "price_per_million": m.price.model_dump(),
        }
        for m in catalog().models
    ]


async def _metrics(gateway: Gateway, _caller: Caller, params: Any) -> Any:
    _parse(_Params, _named("llm.metrics", params))
    return await fleet_metrics(gateway.fleet, gateway.metrics)


METHODS: dict[str, Method] = {
    "llm.complete": _complete,
    "llm.submit": _submit,
    "llm.result": _result,
    "llm.cancel": _cancel,
    "llm.select": _select,
    "llm.models": _models,
    "llm.metrics": _metrics,
}
