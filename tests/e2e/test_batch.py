"""`llm-fleet batch` as a user runs it: a real process against real workers, Redis and the emulator; stopped
with Ctrl-C (also from a real terminal, tmux) or killed, then run again."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from schemas.catalog import Provider
from schemas.settings import FleetSettings
from tests.e2e.conftest import Fleet
from tests.e2e.emulator_api import stats

pytestmark = pytest.mark.e2e

MODEL = "gpt-6-luna"


def _ask(text: str, model: str = MODEL) -> str:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": text}]})


def _input(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


async def _start(
    settings: FleetSettings, source: Path, out: Path, *more: str, file_limit: int = 0, **env: str
) -> asyncio.subprocess.Process:
    """The command as a process of its own; with `file_limit`, no file of its may grow past that many bytes
    (RLIMIT_FSIZE: a write that crosses it is cut short, as on a full disk)."""
    environ = {**os.environ, "REDIS_URL": settings.redis_url, "LLM_KEY_PREFIX": settings.key_prefix, **env}
    if file_limit:  # coverage's own data file could not be written either
        environ = {k: v for k, v in environ.items() if not k.startswith("COVERAGE")}
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "llm_fleet", "batch", str(source), "--out", str(out), *more),
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit)))
        if file_limit
        else None,
    )


async def _finish(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert "Traceback" not in err.decode(), err.decode()
    return proc.returncode or 0, out.decode(), err.decode()


async def _batch(settings: FleetSettings, source: Path, out: Path, *more: str, **env: str) -> tuple[int, str, str]:
    return await _finish(await _start(settings, source, out, *more, file_limit=0, **env))


def _whole_lines(out: Path) -> int:
    return out.read_bytes().count(b"\n") if out.exists() else 0


async def _stopped_midway(
    settings: FleetSettings, tmp_path: Path, lines: int, stop: signal.Signals
) -> tuple[Path, Path, str, asyncio.subprocess.Process]:
    """A run of `lines` slow requests, 4 in flight, sent `stop` once OUT has 4 results: IN, OUT, the prompts'
    mark and the stopped process."""
    run = uuid.uuid4().hex[:8]
    source = _input(tmp_path / "in.jsonl", [_ask(f"{run} {i} [[latency_ms=150]]") for i in range(lines)])
    out = tmp_path / "out.jsonl"
    proc = await _start(settings, source, out, "--concurrency", "4")
    deadline = asyncio.get_running_loop().time() + 60
    while await asyncio.to_thread(_whole_lines, out) < 4:  # another process writes OUT: nothing else to await
        assert asyncio.get_running_loop().time() < deadline, "no 4 results in OUT after 60 s"
        await asyncio.sleep(0.01)
    proc.send_signal(stop)
    return source, out, run, proc


def _results(out: Path) -> list[dict[str, Any]]:
    """Every line of OUT, each a whole JSON object ending in a newline (json.loads fails on a torn one)."""
    data = out.read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines()]


def _one_each(out: Path, lines: int) -> list[dict[str, Any]]:
    results = _results(out)
    assert sorted(r["line"] for r in results) == list(range(1, lines + 1))
    return sorted(results, key=lambda r: r["line"])


def _progress_renders(stderr: str) -> int:
    return sum(line.startswith("batch ") for line in stderr.splitlines())


async def _calls(emulator_url: str, request_ids: list[str]) -> list[int]:
    """How many times each request reached the emulator (its trace_id is its request_id)."""
    seen = (await stats(emulator_url))["by_trace_id"]
    return [seen.get(request_id, 0) for request_id in request_ids]


async def test_ctrl_c_leaves_whole_lines_and_a_second_run_finishes_without_calling_twice(
    fleet: Fleet, emulator_url: str, tmp_path: Path
) -> None:
    settings, _ = await fleet(Provider.OPENAI)
    async with aiohttp.ClientSession() as session:
        await session.post(f"{emulator_url}/_emulator/reset")
    source, out, run, first = await _stopped_midway(settings, tmp_path, 40, signal.SIGINT)
    code, summary, stderr = await _finish(first)
    assert code == 130, stderr
    assert (await stats(emulator_url))["max_open"]["openai"] == 4  # --concurrency 4: never more in flight
    assert "interrupted with" in summary and "run the same command again" in summary
    interrupted = _results(out)
    assert 4 <= len(interrupted) < 40 and all("response" in r for r in interrupted)
    assert _progress_renders(stderr) == 1  # stderr is no terminal: the bar is drawn once, at the end

    code, summary, stderr = await _batch(settings, source, out, "--concurrency", "4")
    assert code == 0, stderr
    assert f"{40 - len(interrupted)} of {40 - len(interrupted)} done" in summary
    assert f"{len(interrupted)} from an earlier run (0 failed)" in summary
    results = _one_each(out, 40)
    assert all(r["response"]["request_id"] == r["request_id"] for r in results)
    assert all(r["response"]["content"].startswith(f"Echo: {run} {r['line'] - 1} ") for r in results)
    # the requests in flight at Ctrl-C finished in the fleet and were attached to, not called again
    assert await _calls(emulator_url, [r["request_id"] for r in results]) == [1] * 40

    code, summary, _ = await _batch(settings, source, out)
    assert code == 0 and "nothing left to do: all 40 lines have their result" in summary
    assert len(_results(out)) == 40


async def test_a_run_killed_mid_write_is_resumed_past_its_torn_last_line(
    fleet: Fleet, emulator_url: str, tmp_path: Path
) -> None:
    settings, _ = await fleet(Provider.OPENAI)
    source, out, _, first = await _stopped_midway(settings, tmp_path, 30, signal.SIGKILL)
    await first.wait()
    with out.open("ab") as torn:  # what a kill in the middle of a write leaves
        torn.write(b'{"line": 30, "request_id": "line30-')
    code, summary, stderr = await _batch(settings, source, out, "--concurrency", "4")
    assert code == 0, stderr
    results = _one_each(out, 30)
    assert all("response" in r for r in results)
    assert await _calls(emulator_url, [r["request_id"] for r in results]) == [1] * 30
    assert "from an earlier run (0 failed)" in summary


async def test_a_line_cut_short_by_a_full_disk_stops_the_run_and_the_next_run_mends_it(
    fleet: Fleet, emulator_url: str, tmp_path: Path
) -> None:
    settings, _ = await fleet(Provider.OPENAI)
    run = uuid.uuid4().hex[:8]
    source = _input(tmp_path / "in.jsonl", [_ask(f"{run} {i}") for i in range(12)])
    out = tmp_path / "out.jsonl"
    code, _, stderr = await _finish(await _start(settings, source, out, "--concurrency", "1", file_limit=2500))
    assert code == 1 and f"cannot write to {out}: a line was cut short" in stderr
    assert out.stat().st_size == 2500 and not out.read_bytes().endswith(b"\n")
    code, _, stderr = await _batch(settings, source, out)
    assert code == 0, stderr
    results = _one_each(out, 12)
    assert await _calls(emulator_url, [r["request_id"] for r in results]) == [1] * 12


async def test_bad_lines_and_failed_requests_each_get_one_error_line(
    fleet: Fleet, emulator_url: str, tmp_path: Path
) -> None:
    settings, _ = await fleet(Provider.OPENAI, LLM_MAX_RETRIES="0")
    run = uuid.uuid4().hex[:8]
    lines = [
        _ask(f"{run} fine"),
        "{not json",
        json.dumps({"model": MODEL, "messages": []}),
        _ask("x", model="no-such-model"),
        _ask(f"{run} [[fault=malformed]]"),
        "",
        _ask(f"{run} waits for an Anthropic worker", model="claude-sonnet-5-5"),
        json.dumps({"model": MODEL, "messages": [{"role": "user", "content": f"{run} [[tokens=3]]"}], "stream": True}),
    ]
    source = _input(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    code, summary, stderr = await _batch(settings, source, out, LLM_REQUEST_TIMEOUT="1")
    assert code == 1, stderr
    by_line = {r["line"]: r for r in _results(out)}
    assert sorted(by_line) == [1, 2, 3, 4, 5, 8]  # line 6 is blank; line 7 has no result yet
    assert "response" in by_line[1] and by_line[8]["response"]["usage"]["completion_tokens"] == 3  # streamed
    errors = {n: r["error"] for n, r in by_line.items() if 1 < n < 8}
    assert errors[2]["type"] == "InvalidRequestError" and errors[2]["message"].startswith("line 2: not JSON")
    assert (
        errors[3]["message"]
        == "line 3: not a valid request: messages: List should have at least 1 item after validation, not 0"
    )
    assert errors[4]["type"] == "UnknownModelError"
    assert errors[5]["type"] == "MalformedResponseError"
    assert "6 of 7 done" in summary and "2 ok, 4 failed" in summary
    assert "1 without a result yet (ResultTimeoutError)" in summary
    assert await _calls(emulator_url, [by_line[1]["request_id"], by_line[5]["request_id"]]) == [1, 1]

    # a second run sends only the line without a result, and still says some failed
    code, summary, _ = await _batch(settings, source, out, LLM_REQUEST_TIMEOUT="1")
    assert code == 1 and "0 of 1 done" in summary and "6 from an earlier run (4 failed)" in summary
    assert len(_results(out)) == 6


async def test_files_it_cannot_use_are_refused_typed(fleet: Fleet, tmp_path: Path) -> None:
    settings, _ = await fleet()
    source = _input(tmp_path / "in.jsonl", [_ask("hi")])
    missing = await _batch(settings, tmp_path / "missing.jsonl", tmp_path / "out.jsonl")
    assert missing[0] == 1 and f"cannot read {tmp_path / 'missing.jsonl'}" in missing[2]
    foreign = _input(tmp_path / "notes.txt", ["my notes"])
    refused = await _batch(settings, source, foreign)
    assert refused[0] == 1 and "line 1 is not a result of llm-fleet batch" in refused[2]
    assert foreign.read_text() == "my notes\n"
    usage = await _batch(settings, source, tmp_path / "out.jsonl", "--concurrency", "0")
    assert usage[0] == 2 and "'0' is not a whole number of at least 1" in usage[2]


def _tmux(socket: str, *args: str, check: bool = True) -> str:
    """A tmux command on our own server (`socket`): its output (blocking, for the few ms it takes)."""
    return subprocess.run(["tmux", "-L", socket, *args], check=check, capture_output=True, text=True).stdout


def _bar_done(screen: str) -> int:
    """How many requests the progress bar on the screen counts done (-1 with no bar)."""
    cells = [cell for line in screen.splitlines() if line.startswith("batch ") for cell in line.split()]
    return next((int(cell.split("/")[0]) for cell in cells if cell.endswith("/40")), -1)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
async def test_in_a_terminal_the_bar_moves_in_place_and_ctrl_c_stops_the_run(fleet: Fleet, tmp_path: Path) -> None:
    settings, _ = await fleet(Provider.OPENAI)
    run = uuid.uuid4().hex[:8]
    source = _input(tmp_path / "in.jsonl", [_ask(f"{run} {i} [[latency_ms=200]]") for i in range(40)])
    out = tmp_path / "out.jsonl"
    socket = f"llmbatch{uuid.uuid4().hex[:8]}"  # a tmux server of our own, with our environment
    env = {"REDIS_URL": settings.redis_url, "LLM_KEY_PREFIX": settings.key_prefix}
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", ".")
    # pytest sets COLUMNS=80, which rich would take over the terminal's own width
    command = ["env", "-u", "COLUMNS", "-u", "LINES", *(f"{k}={v}" for k, v in env.items())]
    command += [sys.executable, "-m", "llm_fleet", "batch", str(source), "--out", str(out), "--concurrency", "2"]
    shell = f"{subprocess.list2cmdline(command)}; echo exit=$?; sleep 60"  # the pane stays to be read
    _tmux(socket, "new-session", "-d", "-x", "160", "-y", "20", "-s", "batch", shell)
    try:

        async def screen_until(seen: str, done: int = 0) -> str:
            """The screen once it shows `seen`, and a bar of at least `done` done."""
            async with asyncio.timeout(30):
                while True:
                    screen = _tmux(socket, "capture-pane", "-p", "-t", "batch")
                    if seen in screen and _bar_done(screen) >= done:
                        return screen
                    await asyncio.sleep(0.1)

        screen = await screen_until("/40 ", done=2)
        bars = [line.split() for line in screen.splitlines() if line.startswith("batch ")]
        assert len(bars) == 1 and _bar_done(screen) < 40  # redrawn in place, never a line per refresh
        assert bars[0][-2:] == ["0", "errors"] and "ETA" in bars[0] and any(c.endswith("/s") for c in bars[0])
        _tmux(socket, "send-keys", "-t", "batch", "C-c")
        screen = await screen_until("exit=")
        assert "exit=130" in screen and "interrupted with" in screen
        assert sum(line.startswith("batch ") for line in screen.splitlines()) == 1
        assert 0 < len(_results(out)) < 40
    finally:
        _tmux(socket, "kill-server", check=False)
