"""Reading the emulator's own record of what reached it."""

from __future__ import annotations

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
