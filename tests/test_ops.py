"""The operations files (ops/Dockerfile, docker-compose.yml, .env.example) agree with the settings they configure.

docker-compose.yml is read with PyYAML (its anchors and merge keys resolved, as Compose resolves them);
tests/ops/test_manifests.py validates it against the Compose Specification's schema.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
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


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


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
    workers = {f"worker-{p}" for p in PROVIDERS}
    assert set(compose["services"]) == {"redis", "emulator", *workers, "exporter", "gateway", "prometheus", "grafana"}
    emulator = compose["services"]["emulator"]
    assert emulator["command"] == ["llm-fleet", "emulator", "--host", "0.0.0.0", "--port", "8400"]
    assert emulator["build"]["dockerfile"] == "ops/Dockerfile"
    # Only the services that run our image's code share it, and only the emulator builds it.
    ours = {name for name, s in compose["services"].items() if s.get("image") == emulator["image"]}
    assert ours == {"emulator", "exporter", "gateway", *workers}


def test_redis_is_7_0_with_aof_on_a_volume_and_no_eviction(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"] == "redis:7.0"
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    # A full Redis refuses writes (the LLMRedisMemoryNearMax alert warns first) rather than drop queued jobs.
    assert "--maxmemory-policy noeviction" in command
    assert re.search(r"--maxmemory \d+[kmg]b\b", command)
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
    # Scalable with `--scale`: no fixed name or host port; /metrics on a fixed container port, for Prometheus.
    assert "container_name" not in service
    assert "ports" not in service
    assert service["expose"] == [env["LLM_METRICS_PORT"]]


def test_exporter_service(compose: dict[str, Any]) -> None:
    exporter = compose["services"]["exporter"]
    command = exporter["command"]
    assert command[:2] == ["llm-fleet", "exporter"]
    assert exporter["expose"] == [command[command.index("--port") + 1]]
    assert set(exporter["environment"]) == {"REDIS_URL"}  # no provider key
    assert exporter["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_gateway_service_is_opt_in_and_holds_no_provider_key(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    command = gateway["command"]
    assert command[:2] == ["llm-fleet", "gateway"]
    assert gateway["profiles"] == ["gateway"]
    assert set(gateway["environment"]) == {"REDIS_URL", "LLM_GATEWAY_TOKENS"}
    assert _substitution(gateway["environment"]["LLM_GATEWAY_TOKENS"]) == ("LLM_GATEWAY_TOKENS", "")
    assert gateway["ports"] == [f"127.0.0.1:{command[command.index('--port') + 1]}:8000"]


def test_prometheus_scrapes_every_worker_service_and_the_exporter(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "ops" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (workers,) = jobs["llm-fleet-workers"]["dns_sd_configs"]  # every replica: one DNS answer each
    assert set(workers["names"]) == {f"worker-{p}" for p in PROVIDERS}
    for name in workers["names"]:
        assert compose["services"][name]["expose"] == [str(workers["port"])]
    (exporter,) = jobs["llm-fleet-exporter"]["static_configs"]
    assert exporter["targets"] == [f"exporter:{compose['services']['exporter']['expose'][0]}"]
    (gateway,) = jobs["llm-fleet-gateway"]["dns_sd_configs"]
    assert gateway["names"] == ["gateway"]
    assert compose["services"]["gateway"]["ports"] == [f"127.0.0.1:{gateway['port']}:{gateway['port']}"]


def test_prometheus_and_grafana_get_the_shipped_files(compose: dict[str, Any]) -> None:
    mounts = {
        target: source
        for service in ("prometheus", "grafana")
        for source, target, *_ in (v.split(":") for v in compose["services"][service]["volumes"])
    }
    assert mounts["/etc/prometheus/prometheus.yml"] == "./ops/prometheus.yml"
    # prometheus.yml names its rule file relative to itself.
    assert yaml.safe_load((ROOT / "ops" / "prometheus.yml").read_text())["rule_files"] == ["alerts.yml"]
    assert mounts["/etc/prometheus/alerts.yml"] == "./ops/alerts.yml"
    assert mounts["/etc/grafana/provisioning"] == "./ops/grafana/provisioning"
    provider = yaml.safe_load((ROOT / "ops/grafana/provisioning/dashboards/llm-fleet.yml").read_text())
    (dashboards,) = provider["providers"]
    assert mounts[dashboards["options"]["path"]] == "./ops/grafana/dashboards"
    for source in mounts.values():
        assert source.startswith("./") and (ROOT / source).exists() or source in compose["volumes"], source


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
    # The pinned tree first, then our package alone, checked whole.
    assert "RUN pip install --require-hashes -r ops/requirements.lock" in dockerfile
    assert "RUN pip install --no-deps . && pip check" in dockerfile
    assert dockerfile.index("COPY ops/requirements.lock") < dockerfile.index("COPY pyproject.toml")
    imported = re.search(r'python -c "import ([\w, ]+)"', dockerfile)
    assert imported and set(wheel["packages"]) <= {name.strip() for name in imported[1].split(",")}
    user = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert user and user[-1].split(":")[0] not in {"root", "0"}
    assert not re.search(r"^(ENV|ARG)\b.*API_KEY", dockerfile, re.MULTILINE)


# The image's platform, for the requirements' markers (ops/Dockerfile: python:3.11-slim on linux).
IMAGE_ENV = {
    **default_environment(),
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
}
DEV_EXTRAS = {"demo", "dev", "bench"}  # tools and the demo: never in the image


def _lock() -> dict[str, str]:
    """ops/requirements.lock as {name: version}; every pin carries its hashes."""
    text = (ROOT / "ops" / "requirements.lock").read_text()
    pins = re.findall(r"^([A-Za-z0-9][\w.\-]*)==(\S+) \\\n\s+--hash=sha256:", text, re.MULTILINE)
    assert len(pins) == len(re.findall(r"^\S+==", text, re.MULTILINE)), "a pin without --hash"
    return {canonicalize_name(name): version for name, version in pins}


def test_lock_pins_every_requirement_of_the_image() -> None:
    """ops/requirements.lock is not stale against pyproject.toml: `make lock` covers every extra a deployed
    process needs, and each requirement (the extras' own included) is met by its pinned version. Offline: the
    lock is read, not resolved again."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    (line,) = re.findall(r"^LOCK_EXTRAS := (.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert set(line.split()) == set(extras) - DEV_EXTRAS, "add the new extra to LOCK_EXTRAS and run `make lock`"
    pins = _lock()
    pending = [Requirement(r) for r in project["dependencies"]] + [
        Requirement(r) for extra in line.split() for r in extras[extra]
    ]
    while pending:
        requirement = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate(IMAGE_ENV):
            continue
        name = canonicalize_name(requirement.name)
        if name == canonicalize_name(project["name"]):  # llm-fleet[workers,...]: its extras' requirements
            pending += [Requirement(r) for extra in requirement.extras for r in extras[extra]]
            continue
        assert name in pins, f"{requirement} is not in ops/requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{name}=={pins[name]} does not meet {requirement}: run `make lock`"
        )
