"""The catalog as data: the shipped file, an operator's overrides, ambiguity refused, lifecycle, prices."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from schemas.catalog import Catalog, CatalogError, ModelInfo, Provider, catalog, resolve_model
from schemas.errors import ModelRetiredError
from schemas.request import LLMRequest, deprecation, validate_for_model, with_replacements


def _request(model: str, **kw: object) -> LLMRequest:
    return LLMRequest(model=model, messages=[{"role": "user", "content": "hi"}], **kw)  # type: ignore[arg-type]


def test_the_shipped_catalog_is_current_as_of_its_sources() -> None:
    shipped = json.loads((Path(__file__).parents[2] / "schemas" / "catalog.json").read_text())
    sources = {s["id"] for s in shipped["sources"]}
    for entry in shipped["models"]:
        assert set(entry["source"]) <= sources, entry["id"]  # every figure names where it was read
    models = catalog().models
    assert {m.provider for m in models if m.status == "current"} == set(Provider)
    for tier in ("fast", "balanced", "premium"):
        assert {m.provider for m in models if m.tier == tier and m.status == "current"} == set(Provider), tier
    # OpenAI shuts these snapshots down on 2026-12-11: deprecated, with the replacement OpenAI names
    for old in ("gpt-5-2025-08-07", "gpt-5-mini-2025-08-07", "gpt-5-nano-2025-08-07", "o3-2025-04-16"):
        info = resolve_model(old)
        assert (info.status, info.lifecycle.shutdown) == ("deprecated", datetime.date(2026, 12, 11))
        assert resolve_model(str(info.lifecycle.replacement)).status == "current"


def test_a_retired_model_is_refused_naming_its_replacement_or_replaced_on_request() -> None:
    with pytest.raises(ModelRetiredError, match="'claude-3-5-haiku-20241022' is retired.*claude-haiku-4-5") as refused:
        validate_for_model(_request("claude-3-5-haiku"))
    assert refused.value.details["replacement"] == "claude-haiku-4-5-20251001" and not refused.value.retryable
    with pytest.raises(ModelRetiredError):  # a fallback passes the same check
        validate_for_model(_request("gpt-4.1", fallbacks=["gemini-1.5-flash"]), "gemini-1.5-flash")

    replaced = with_replacements(_request("gemini-1.5-flash", fallbacks=["claude-3-opus", "gpt-4.1"]))
    assert replaced.model == "gemini-3.5-flash-lite" and replaced.model_requested == "gemini-1.5-flash"
    assert replaced.fallbacks == ["claude-opus-5-5", "gpt-4.1"]  # a current fallback is kept as it was named
    assert validate_for_model(replaced).id == "gemini-3.5-flash-lite"
    current = _request("claude-haiku-4-5")
    assert with_replacements(current) is current


def test_a_deprecated_model_works_and_says_until_when() -> None:
    info = validate_for_model(_request("gpt-5"))
    notice = deprecation(info)
    assert notice is not None and "2026-12-11" in notice and "gpt-6.1-sol" in notice
    assert deprecation(resolve_model("gpt-6-luna")) is None


def test_an_override_file_adds_a_model_and_changes_a_price(tmp_path: Path) -> None:
    override = tmp_path / "catalog.json"
    override.write_text(
        json.dumps(
            {
                "models": [
                    {"id": "gpt-6-luna", "price": {"input": 0.05}},  # a negotiated price
                    {"id": "gpt-6-luna-2026-12-06", "provider": "openai", "aliases": ["luna-today"], "tier": "fast"},
                ]
            }
        )
    )
    merged = Catalog.load(str(override))
    luna = merged.resolve("luna")
    assert (luna.price.input, luna.price.output) == (0.05, 0.5)  # the rest of the entry as shipped
    assert merged.resolve("luna-today").id == "gpt-6-luna-2026-12-06"
    with pytest.raises(CatalogError, match="not a catalog"):
        Catalog.load(str(tmp_path / "missing.json"))


def test_an_ambiguous_catalog_is_refused_naming_both_entries() -> None:
    a = ModelInfo(id="m-1", provider=Provider.OPENAI, aliases=("m",))
    for other in (
        ModelInfo(id="m-2", provider=Provider.GEMINI, aliases=("m",)),  # one name on two providers
        ModelInfo(id="m-2", provider=Provider.OPENAI, aliases=("m-1",)),  # an alias that is another model's id
    ):
        with pytest.raises(CatalogError, match="m-1 \\(openai\\) and m-2"):
            Catalog([a, other])
    with pytest.raises(CatalogError, match="replacement 'gone'"):
        Catalog([ModelInfo(id="x", provider=Provider.OPENAI, lifecycle={"status": "retired", "replacement": "gone"})])


@pytest.mark.parametrize(
    ("model", "prompt", "completion", "cached", "expected"),
    [
        # OpenAI: cached input inside prompt_tokens, at the cached price; reasoning inside completion_tokens
        ("gpt-6.2-sol", 1_000_000, 1_000_000, 400_000, 0.6 * 2 + 0.4 * 0.1 + 10),
        # Anthropic: cache reads (our prompt holds them) at the cache-read price
        ("claude-sonnet-5-5", 10_000, 2_000, 4_000, (6_000 * 2 + 4_000 * 0.2 + 2_000 * 10) / 1e6),
        # Gemini: thoughts are billed as output (our completion holds them)
        ("gemini-3.8-flash", 2_000, 3_000, None, (2_000 * 0.75 + 3_000 * 3.75) / 1e6),
        # no cached-input price known: the input price
        ("claude-sonnet-4-6", 1_000, 0, 500, 1_000 * 3 / 1e6),
    ],
)
def test_cost_is_priced_as_each_provider_bills(
    model: str, prompt: int, completion: int, cached: int | None, expected: float
) -> None:
    assert resolve_model(model).cost(prompt, completion, cached) == pytest.approx(expected)


def test_a_model_without_a_price_costs_none() -> None:
    assert resolve_model("o3").cost(10, 10) is None
