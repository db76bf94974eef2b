"""build_adapter: the provider's adapter, its key required, only its own SDK imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from schemas.catalog import Provider
from tests.workers.providers.replay import make_settings
from workers.providers import build_adapter
from workers.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("provider", "variable"),
    [
        (Provider.OPENAI, "OPENAI_API_KEY"),
        (Provider.ANTHROPIC, "ANTHROPIC_API_KEY"),
        (Provider.GEMINI, "GOOGLE_API_KEY"),
    ],
)
def test_build_adapter_without_a_key_names_the_variable(provider, variable) -> None:
    with pytest.raises(ValueError, match=variable):
        build_adapter(provider, WorkerSettings())


@pytest.mark.parametrize("provider", list(Provider))
async def test_build_adapter_gives_the_provider_s_adapter(provider) -> None:
    adapter = build_adapter(provider, make_settings(provider, "http://127.0.0.1:9"))
    assert adapter.provider is provider
    await adapter.aclose()


@pytest.mark.parametrize(
    ("provider", "sdk"),
    [(Provider.OPENAI, "openai"), (Provider.ANTHROPIC, "anthropic"), (Provider.GEMINI, "google.genai")],
)
def test_build_adapter_imports_only_its_own_sdk(provider, sdk) -> None:
    code = f"""
import sys
from schemas.catalog import Provider
from tests.workers.providers.replay import make_settings
from workers.providers import build_adapter
build_adapter(Provider({provider.value!r}), make_settings(Provider({provider.value!r}), "http://127.0.0.1:9"))
print(" ".join(sorted(m for m in ("openai", "anthropic", "google.genai") if m in sys.modules)))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == [sdk]
