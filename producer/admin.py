"""What operators read and repair: dead letters (list, show, retry) and provider health."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from redis.asyncio import Redis

from jobstore import BUCKET_S, Intake, Keys
from schemas.catalog import ModelInfo, Provider, resolve_model
from schemas.codec import decode_request
from schemas.errors import LLMError

__all__ = ["dead_letters", "provider_health", "retry_dead_letter", "show_request"]


async def dead_letters(redis: Redis, keys: Keys, limit: int = 100) -> list[dict[str, Any]]:
    """The most recent requests that failed for good: id, when, provider, model and error."""
    entries = await redis.zrevrange(keys.dead(), 0, limit - 1, withscores=True)
    letters = []
    for raw_id, at in entries:
        request_id = raw_id.decode()
        job = await show_request(redis, keys, request_id)
        error = (job.get("result") or {}).get("error", {})
        body: dict[str, Any] = job["body"] if isinstance(job.get("body"), dict) else {}
        letters.append(
            {
                "request_id": request_id,
                "failed_at": at,
                "provider": job.get("provider"),
                "model": body.get("model"),
                "error": error.get("type"),
                "message": error.get("message"),
            }
        )
    return letters


async def show_request(redis: Redis, keys: Keys, request_id: str) -> dict[str, Any]:
    """Everything Redis holds about a request (empty when it is unknown or expired)."""
    raw = await redis.hgetall(keys.request(request_id))  # type: ignore[misc]
    job: dict[str, Any] = {k.decode(): v.decode(errors="replace") for k, v in raw.items()}
    for field in ("body", "result"):
        if field in job:
            with contextlib.suppress(ValueError):  # a malformed body is shown as it is
                job[field] = json.loads(job[field])
    return job


async def retry_dead_letter(redis: Redis, keys: Keys, request_id: str, *, timeout_s: float, ttl_s: int) -> bool:
    """Queue a dead letter again (same request_id, fresh deadline); False if it is not a dead letter."""
    stored, body = await redis.hmget(keys.request(request_id), ["provider", "body"])  # type: ignore[misc]
    if stored is None:
        await redis.zrem(keys.dead(), request_id)
        return False
    own = _own_model(body)
    return await Intake(redis, keys).retry_dead(
        request_id=request_id,
        provider=own.queue if own else stored.decode(),
        model=own.id if own else "",
        deadline_at=time.time() + timeout_s,
        ttl_s=ttl_s,
    )


def _own_model(body: bytes | None) -> ModelInfo | None:
    """The request's own model, where a retry starts; None for a body that names no model we know (the stored
    provider is kept: its worker fails the job, typed, again)."""
    try:
        return resolve_model(decode_request(body).model)
    except LLMError:
        return None


async def provider_health(redis: Redis, keys: Keys, *, dead_after_s: float) -> list[dict[str, Any]]:
    """Per provider: circuit state (closed / open / half-open: traffic flows again after an open period and
    the circuit reopens by the same rule), cooldown, recent error rate, queue depth, live workers, and the
    queue elements dropped for having no job behind them."""
    now = time.time()
    bucket = int(now // BUCKET_S)
    seconds, micros = await redis.time()  # the heartbeats are on Redis's clock
    alive_since = seconds + micros / 1e6 - dead_after_s
    rows = []
    for provider in Provider:
        p = provider.value
        async with redis.pipeline(transaction=False) as pipe:
            pipe.pttl(keys.circuit(p))
            pipe.exists(keys.probation(p))
            pipe.pttl(keys.cooldown(p))
            pipe.hgetall(keys.health(p))
            pipe.llen(keys.queue(p))
            pipe.zcard(keys.delayed(p))
            pipe.zcount(keys.workers(p), alive_since, "+inf")
            pipe.get(keys.dropped(p))
            circuit_ms, probation, cooldown_ms, counts, depth, delayed, workers, dropped = await pipe.execute()
        ok = err = 0
        for field, value in counts.items():
            outcome, _, at = field.decode().partition(":")
            if int(at) >= bucket - 2:
                ok += int(value) if outcome == "ok" else 0
                err += int(value) if outcome == "err" else 0
        rows.append(
            {
                "provider": p,
                "circuit": "open" if circuit_ms > 0 else "half-open" if probation else "closed",
                "open_for_s": max(circuit_ms, 0) / 1000,
                "cooldown_s": max(cooldown_ms, 0) / 1000,
                "recent_requests": ok + err,
                "error_rate": round(err / (ok + err), 3) if ok + err else 0.0,
                "queued": depth,
                "retrying": delayed,
                "dropped": int(dropped or 0),  # queue elements with no job behind them
                "workers": workers,
            }
        )
    return rows
