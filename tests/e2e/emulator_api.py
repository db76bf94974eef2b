"""Reading the emulator's own record of what reached it."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp


async def stats(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/_emulator/stats") as resp:
        return await resp.json()  # type: ignore[no-any-return]


async def requests_for(url: str, trace_id: str) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/_emulator/requests", params={"trace_id": trace_id}) as resp,
    ):
        data = await resp.json()
        return data["requests"] if isinstance(data, dict) else data  # type: ignore[no-any-return]


async def wait_for_calls(url: str, trace_id: str, count: int = 1, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Wait until the emulator has seen `count` calls of a trace (another process: nothing to await but it)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(calls := await requests_for(url, trace_id)) < count:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"the emulator saw {len(calls)} of {count} calls for {trace_id}")
        await asyncio.sleep(0.01)
    return calls
