"""The operations files (ops/Dockerfile, docker-compose.yml, .env.example) agree with the settings they configure.

No YAML library is a dependency, so docker-compose.yml keeps to a subset read here: block mappings whose
values are plain or quoted scalars or JSON-style `[...]` / `{...}` values.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from gateway.settings import GatewaySettings
from schemas.settings import FleetSettings
from workers.settings import WorkerSettings

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = {
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL", "/v1"),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", ""),
    "gemini": ("GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", ""),
}
ALIASES = {f.alias: f for f in WorkerSettings.model_fields.values() if f.alias}
ALIASES |= {f.alias: f for f in GatewaySettings.model_fields.values() if f.alias}  # the gateway's own
# Read by the `llm-fleet` dispatcher itself (logging is configured before any settings object exists).
DISPATCHER_VARS = {"LLM_LOG_LEVEL"}
KNOWN = set(ALIASES) | DISPATCHER_VARS
INTERPOLATION = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def _scalar(text: str) -> Any:
    if text[:1] in "[{":
        return json.loads(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _compose_subset(text: str) -> dict[str, Any]:
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"\s+#\s.*$", "", raw).rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        key, sep, value = line.strip().partition(":")
        assert sep and not key.startswith("- "), f"docker-compose.yml:{number}: outside the subset: {raw!r}"
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if value.strip():
            parent[key] = _scalar(value.strip())
        else:
            parent[key] = {}
            stack.append((indent, parent[key]))
    return root


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _compose_subset((ROOT / "docker-compose.yml").read_text())


def _env_example() -> dict[str, str]:
    """Every `NAME=value` of .env.example, set or commented out."""
    found = re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", (ROOT / ".env.example").read_text(), re.MULTILINE)
    return dict(found)


def _substitution(value: str) -> tuple[str, str]:
    """`${NAME:-default}` as (NAME, default)."""
    match = INTERPOLATION.fullmatch(value)
    assert match and match[2] is not None, value
    return match[1], match[2]


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match[1]) * (60 if match[2] == "m" else 1)


def test_settings_aliases_cover_both_sides() -> None:
    assert {f.alias for f in FleetSettings.model_fields.values()} <= set(ALIASES)
    assert "LLM_LOG_LEVEL" in (ROOT / "llm_fleet.py").read_text()


def test_compose_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"redis", "emulator", *(f"worker-{p}" for p in PROVIDERS)}
    emulator = compose["services"]["emulator"]
    assert emulator["command"] == ["llm-fleet", "emulator", "--host", "0.0.0.0", "--port", "8400"]
    assert emulator["build"]["dockerfile"] == "ops/Dockerfile"


def test_redis_is_7_0_with_aof_on_a_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"] == "redis:7.0"
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    volume = redis["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_worker_service(compose: dict[str, Any], provider: str) -> None:
    service = compose["services"][f"worker-{provider}"]
    key_var, url_var, url_path = PROVIDERS[provider]
    env = service["environment"]
    assert service["command"] == ["llm-fleet", "worker", "--provider", provider]
    assert set(env) <= KNOWN, set(env) - KNOWN
    for value in env.values():
        assert {name for name, _ in INTERPOLATION.findall(value)} <= KNOWN
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    # Only workers hold keys, and each only its own provider's.
    other_keys = {key for other, (key, _, _) in PROVIDERS.items() if other != provider}
    assert not other_keys & set(env)
    assert "env_file" not in service  # it would hand every key in .env to every worker
    # Keys and base URLs come from the environment, defaulting to the emulator (no real key needed).
    assert _substitution(env[key_var]) == (key_var, "emulator-key")
    assert _substitution(env[url_var]) == (url_var, f"http://emulator:8400{url_path}")
    assert service["depends_on"]["redis"] == {"condition": "service_healthy"}
    # SIGTERM lets in-flight requests finish for LLM_SHUTDOWN_GRACE seconds before compose kills the worker.
    assert _substitution(env["LLM_SHUTDOWN_GRACE"]) == (
        "LLM_SHUTDOWN_GRACE",
        str(ALIASES["LLM_SHUTDOWN_GRACE"].default),
    )
    assert _seconds(service["stop_grace_period"]) > ALIASES["LLM_SHUTDOWN_GRACE"].default


def test_env_example_names_known_variables_with_their_defaults() -> None:
    example = _env_example()
    assert set(example) <= KNOWN, set(example) - KNOWN
    for name, value in example.items():
        field = ALIASES.get(name)
        if field is not None and field.default is not None:
            assert TypeAdapter(field.annotation).validate_python(value) == field.default, name


def test_env_example_covers_the_readme_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = {
        name
        for row in table.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([A-Z_]+)`", row.split("|")[1])
    }
    assert documented, "README's configuration table not found"
    assert documented <= set(_env_example()), documented - set(_env_example())


def test_dockerfile_builds_the_wheel_as_non_root_without_keys() -> None:
    dockerfile = (ROOT / "ops" / "Dockerfile").read_text()
    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    copied = {
        part.rstrip("/") for line in dockerfile.splitlines() if line.startswith("COPY ") for part in line.split()[1:-1]
    }
    assert set(wheel["only-include"]) | {"pyproject.toml", "README.md"} <= copied
    assert re.search(r'pip install "\./\[workers,emulator,gateway\]"', dockerfile)
    imported = re.search(r'python -c "import ([\w, ]+)"', dockerfile)
    assert imported and set(wheel["packages"]) <= {name.strip() for name in imported[1].split(",")}
    user = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in {"root", "0"}
    assert not re.search(r"^(ENV|ARG)\b.*API_KEY", dockerfile, re.MULTILINE)
