"""The peer users pick instead: LiteLLM's Router, in-process, against the same emulator. A benchmark-only
extra (`pip install litellm`), never a runtime dependency."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from schemas.catalog import Provider
from schemas.request import LLMRequest

Pick = Callable[[int], tuple[Provider, LLMRequest]]


def litellm_caller(emulator_url: str, models: dict[Provider, str], pick: Pick) -> Callable[[int], Awaitable[object]]:
    """A Router with one deployment per model, each pointed at the emulator, retries off (as ours are in
    the direct path); returns a call that sends request `i` through it."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # its bundled price list: no network
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    routes = {
        Provider.OPENAI: ("openai", "/v1"),
        Provider.ANTHROPIC: ("anthropic", ""),
        Provider.GEMINI: ("gemini", "/v1beta"),
    }
    router = litellm.Router(
        model_list=[
            {
                "model_name": model,
                "litellm_params": {
                    "model": f"{routes[provider][0]}/{model}",
                    "api_base": f"{emulator_url}{routes[provider][1]}",
                    "api_key": "emulator-key",
                    "max_retries": 0,
                },
            }
            for provider, model in models.items()
        ],
        num_retries=0,
    )

    async def call(i: int) -> object:
        request = pick(i)[1]
        return await router.acompletion(
            model=request.model,
            messages=[{"role": m.role, "content": m.content} for m in request.messages],
            max_tokens=request.max_tokens,
        )

    return call
