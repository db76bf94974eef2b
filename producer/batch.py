"""`llm-fleet batch IN.jsonl --out OUT.jsonl`: one request per input line through the fleet, at most N in flight,
each result appended to OUT as it completes; a second run skips what OUT holds and finishes the rest.

A line of OUT is one JSON object, written with one `write`: `{"line": N, "request_id": ..., "response": {...}}`
or `{"line": N, "request_id": ..., "error": {"type", "message", "retryable", ...}}`. A line of IN that names no
request_id gets one made of its number and a digest of its bytes: the same on every run (so a request queued
before an interruption is attached to on the next run, not called again) and different for two identical
lines.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from producer.client import LLMClient
from schemas.errors import FleetUnavailableError, InvalidRequestError, LLMError, ResultTimeoutError
from schemas.request import LLMRequest, explain
from schemas.response import LLMResponse
from schemas.settings import FleetSettings

__all__ = ["Line", "line_id", "read_lines", "run", "take_results"]

_INTERRUPTED = 130  # the exit code of a run stopped by Ctrl-C (128 + SIGINT)
_UNFINISHED = (ResultTimeoutError, FleetUnavailableError)  # the wait failed, not the request: left for a rerun


@dataclass(frozen=True, slots=True)
class Line:
    """One line of IN: its number (from 1), its request_id, and the request, or what is wrong with it."""

    number: int
    request_id: str
    parsed: LLMRequest | InvalidRequestError


def line_id(number: int, raw: bytes) -> str:
    """The request_id of a line that names none: its number and a digest of its bytes."""
    return f"line{number}-{hashlib.blake2b(raw, digest_size=10).hexdigest()}"


def read_lines(source: Path) -> Iterator[Line]:
    """The lines of IN that are not blank, each parsed; a request_id a line reuses is a problem of that line."""
    first_with: dict[str, int] = {}
    with source.open("rb") as lines:
        for number, raw in enumerate(lines, 1):
            raw = raw.strip()
            if not raw:
                continue
            line = _parse(number, raw)
            earlier = first_with.setdefault(line.request_id, number)
            if earlier != number:
                problem = _bad(number, f"request_id {line.request_id!r} is line {earlier}'s too")
                line = Line(number, line_id(number, raw), problem)
            yield line


def _parse(number: int, raw: bytes) -> Line:
    own = line_id(number, raw)
    try:
        data = json.loads(raw)
    except ValueError as exc:  # not UTF-8 either: UnicodeDecodeError is a ValueError
        return Line(number, own, _bad(number, f"not JSON ({exc})"))
    if not isinstance(data, dict):
        return Line(number, own, _bad(number, f"a JSON {type(data).__name__}, not an object (a request)"))
    try:
        request = LLMRequest.model_validate({"request_id": own, **data})
    except ValidationError as exc:
        return Line(number, own, _bad(number, f"not a valid request: {explain(exc)}"))
    return Line(number, request.request_id, request)


def _bad(number: int, what: str) -> InvalidRequestError:
    return InvalidRequestError(f"line {number}: {what}", line=number)


def take_results(out: Path) -> dict[str, bool]:
    """The request_ids OUT holds a result for (True: a response, False: an error). A torn last line (a run
    killed mid-write) is cut off; a line that is no result of a batch run is refused, typed."""
    if not out.exists():
        return {}
    results: dict[str, bool] = {}
    with out.open("rb+") as lines:
        whole = 0  # where the last whole line ends
        for number, raw in enumerate(lines, 1):
            if not raw.endswith(b"\n"):
                lines.truncate(whole)
                break
            try:
                entry = json.loads(raw)
                request_id = entry["request_id"]
            except (ValueError, TypeError, KeyError):  # not JSON, not an object, no request_id
                request_id = None
            if not isinstance(request_id, str):
                raise LLMError(f"{out}: line {number} is not a result of llm-fleet batch; give another --out")
            results[request_id] = "response" in entry
            whole += len(raw)
    return results


@dataclass
class Tally:
    """What a run did, and what OUT held before it."""

    requests: int = 0  # lines of IN that are not blank
    earlier: int = 0  # of them, results OUT held already
    earlier_failed: int = 0
    ok: int = 0
    failed: int = 0
    unfinished: dict[str, int] = field(default_factory=dict)  # by error type: results not had yet
    interrupted: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def todo(self) -> int:
        return self.requests - self.earlier

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return _INTERRUPTED
        return 1 if self.failed or self.earlier_failed or self.unfinished else 0

    def summary(self, out: Path) -> str:
        elapsed = time.monotonic() - self.started
        done = self.ok + self.failed
        rate = f", {done / elapsed:.1f}/s" if done and elapsed > 0 else ""
        parts = [f"{done} of {self.todo} done in {elapsed:.1f}s{rate}: {self.ok} ok, {self.failed} failed"]
        if not self.todo:
            parts = [f"nothing left to do: all {self.requests} lines have their result"]
        if self.earlier:
            parts.append(f"{self.earlier} from an earlier run ({self.earlier_failed} failed)")
        left = self.todo - done
        for kind, count in self.unfinished.items():
            parts.append(f"{count} without a result yet ({kind})")
        if self.interrupted:
            parts.append(f"interrupted with {left} left")
        if left:
            parts.append("run the same command again to finish")
        return f"batch: {'; '.join(parts)}; results in {out}\n"


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:.1f}/s", style="progress.data.speed")


class _Run:
    """The lines to do, shared by N tasks that each send one at a time; results go to OUT as they come."""

    def __init__(self, sink: IO[bytes], progress: Progress, tally: Tally) -> None:
        self.sink, self.progress, self.tally = sink, progress, tally
        self.bar: TaskID = progress.add_task("batch", total=tally.todo, errors=0)

    async def send(self, client: LLMClient, lines: Iterator[Line]) -> None:
        for line in lines:
            outcome: LLMResponse | LLMError
            if isinstance(line.parsed, InvalidRequestError):
                outcome = line.parsed
            else:
                try:
                    outcome = await client.complete(line.parsed)
                except _UNFINISHED as exc:
                    self._unfinished(exc)
                    continue
                except LLMError as exc:
                    outcome = exc
            self._record(line, outcome)

    def _record(self, line: Line, outcome: LLMResponse | LLMError) -> None:
        entry: dict[str, Any] = {"line": line.number, "request_id": line.request_id}
        if isinstance(outcome, LLMError):
            entry["error"] = outcome.to_dict()
        else:
            entry["response"] = outcome.model_dump(mode="json")
        data = (json.dumps(entry) + "\n").encode()
        try:
            written = self.sink.write(data)  # unbuffered: one write(2) per line
        except OSError as exc:
            raise LLMError(f"cannot write to {self.sink.name}: {exc.strerror}") from None
        if written != len(data):  # a torn line, cut by the next run; nothing more may follow it
            raise LLMError(f"cannot write to {self.sink.name}: a line was cut short (is the disk full?)")
        failed = "error" in entry
        self.tally.failed += failed
        self.tally.ok += not failed
        self.progress.update(self.bar, advance=1, errors=self.tally.failed)

    def _unfinished(self, exc: LLMError) -> None:
        kind = type(exc).__name__
        self.tally.unfinished[kind] = self.tally.unfinished.get(kind, 0) + 1
        if isinstance(exc, FleetUnavailableError):  # Redis is away: the other lines would wait as long
            raise exc


async def _send_all(source: Path, out: Path, concurrency: int, tally: Tally, settings: FleetSettings) -> None:
    done = take_results(out)
    for line in read_lines(source):
        tally.requests += 1
        if line.request_id in done:
            tally.earlier += 1
            tally.earlier_failed += not done[line.request_id]
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[errors]} errors"),
    )
    async with LLMClient(settings=settings) as client:
        with out.open("ab", buffering=0) as sink, Progress(*columns, console=Console(stderr=True)) as progress:
            run = _Run(sink, progress, tally)
            lines = (line for line in read_lines(source) if line.request_id not in done)
            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(concurrency):
                        group.create_task(run.send(client, lines))
            except ExceptionGroup as failed:  # the first task's failure, as it was raised
                raise failed.exceptions[0] from None


async def run(source: Path, out: Path, concurrency: int, settings: FleetSettings | None = None) -> int:
    """Send every line of `source` not yet in `out`; print a summary; the exit code (0, 1, or 130 on Ctrl-C)."""
    for path, mode in ((source, "rb"), (out, "ab")):
        try:
            path.open(mode).close()
        except OSError as exc:
            raise LLMError(f"cannot {'read' if mode == 'rb' else 'write'} {path}: {exc.strerror}") from None
    tally = Tally()
    try:
        await _send_all(source, out, concurrency, tally, settings or FleetSettings())
    except asyncio.CancelledError:  # Ctrl-C: OUT holds whole lines; the requests in flight finish in the fleet
        tally.interrupted = True
    finally:
        if tally.requests:  # also when the run failed (its error follows on stderr)
            sys.stdout.write(tally.summary(out))
    return tally.exit_code
