"""``python -m emulator.cli``: the ready line, serving, and a clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp
import openai

ROOT = Path(__file__).parents[2]


async def test_cli_serves_until_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator.cli",
        "--port",
        "0",
        "--latency-ms",
        "20",
        "--tokens-per-s",
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), timeout=20))
        assert ready.keys() == {"event", "url", "port"}
        assert ready["event"] == "emulator_ready"
        assert ready["url"] == f"http://127.0.0.1:{ready['port']}"
        async with openai.AsyncOpenAI(api_key="k", base_url=f"{ready['url']}/v1", max_retries=0) as client:
            completion = await client.chat.completions.create(
                model="gpt-4.1-mini", messages=[{"role": "user", "content": "Hi"}]
            )
        assert completion.choices[0].message.content is not None
        async with aiohttp.ClientSession() as session, session.get(f"{ready['url']}/_emulator/stats") as response:
            assert (await response.json())["requests"] == {"total": 1, "openai": 1, "anthropic": 0, "gemini": 0}
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
    assert await process.stdout.read() == b""  # nothing after the ready line
