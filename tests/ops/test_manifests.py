"""The Compose file and the Kubernetes and KEDA manifests, parsed with PyYAML and validated offline against their
published JSON schemas (tests/schemas_vendored/, README there says where each comes from), then checked for
what the schemas cannot say: each worker holds only its own key, waits out its grace, scales on its queue."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource

from gateway.settings import GatewaySettings
from jobstore.keys import Keys
from schemas.catalog import Provider
from schemas.settings import FleetSettings
from workers.settings import KEY_VARS, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
VENDORED = ROOT / "tests" / "schemas_vendored"
K8S = ROOT / "ops" / "k8s"
K8S_SCHEMAS = VENDORED / "kubernetes-v1.33.0-local-strict"
KINDS = {"Deployment": "deployment-apps-v1.json", "Service": "service-v1.json", "Secret": "secret-v1.json"}
# KEDA's redis scaler (keda.sh/docs/2.20/scalers/redis-lists): its trigger metadata is a free string map in
# the CRD, so its keys are checked against the documented parameters here.
REDIS_SCALER_KEYS = {
    "address",
    "addressFromEnv",
    "host",
    "hostFromEnv",
    "port",
    "portFromEnv",
    "usernameFromEnv",
    "passwordFromEnv",
    "listName",
    "listLength",
    "activationListLength",
    "enableTLS",
    "unsafeSsl",
    "databaseIndex",
}
GRACE_DEFAULT = WorkerSettings.model_fields["shutdown_grace_s"].default


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _k8s_objects() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _documents(path):
            yield f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc


OBJECTS = dict(_k8s_objects())


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in OBJECTS.values() if doc["kind"] == kind]


def _strict(schema: Any) -> Any:
    """The CRD's schema as the API server applies it with strict field validation (`kubectl apply
    --validate=strict`): an object's unknown field is an error, where the CRD does not preserve them."""
    if isinstance(schema, dict):
        out = {key: _strict(value) for key, value in schema.items()}
        if "properties" in out and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@pytest.fixture(scope="module")
def k8s_registry() -> Registry:  # type: ignore[type-arg]
    definitions = json.loads((K8S_SCHEMAS / "_definitions.json").read_text())
    return Registry().with_resource(definitions["$id"], Resource.from_contents(definitions))


@pytest.fixture(scope="module")
def scaledobject_schema() -> dict[str, Any]:
    (crd,) = _documents(VENDORED / "keda.sh_scaledobjects.yaml")
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return dict(_strict(version["schema"]["openAPIV3Schema"]))


def test_every_object_is_a_kind_we_validate() -> None:
    assert {doc["kind"] for doc in OBJECTS.values()} == {*KINDS, "ScaledObject"}


@pytest.mark.parametrize("name", [name for name, doc in OBJECTS.items() if doc["kind"] in KINDS])
def test_kubernetes_object_matches_its_schema(name: str, k8s_registry: Registry) -> None:  # type: ignore[type-arg]
    doc = OBJECTS[name]
    schema = json.loads((K8S_SCHEMAS / KINDS[doc["kind"]]).read_text())
    jsonschema.Draft202012Validator(schema, registry=k8s_registry).validate(doc)


@pytest.mark.parametrize("name", [name for name, doc in OBJECTS.items() if doc["kind"] == "ScaledObject"])
def test_scaledobject_matches_kedas_crd(name: str, scaledobject_schema: dict[str, Any]) -> None:
    doc = OBJECTS[name]
    assert doc["apiVersion"] == "keda.sh/v1alpha1"
    jsonschema.Draft7Validator(scaledobject_schema).validate(doc)


def test_the_schemas_refuse_what_they_should(
    k8s_registry: Registry,  # type: ignore[type-arg]
    scaledobject_schema: dict[str, Any],
) -> None:
    """The validation above can fail: a misspelt field is refused by each schema."""
    deployment = copy.deepcopy(_by_kind("Deployment")[0])
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 45
    schema = json.loads((K8S_SCHEMAS / KINDS["Deployment"]).read_text())
    with pytest.raises(jsonschema.ValidationError, match="terminationGracePeriod"):
        jsonschema.Draft202012Validator(schema, registry=k8s_registry).validate(deployment)
    scaled = copy.deepcopy(_by_kind("ScaledObject")[0])
    scaled["spec"]["maxReplicas"] = 3
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        jsonschema.Draft7Validator(scaledobject_schema).validate(scaled)


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _worker_deployment(provider: Provider) -> dict[str, Any]:
    (found,) = [
        d
        for d in _by_kind("Deployment")
        if _container(d)["command"][1:3] == ["worker", "--provider"] and _container(d)["command"][3] == provider.value
    ]
    return found


@pytest.mark.parametrize("provider", list(Provider))
def test_worker_deployment(provider: Provider) -> None:
    deployment = _worker_deployment(provider)
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    env = {e["name"]: e for e in container["env"]}
    # Its own key, from a Secret, and no other provider's; no key written in the manifest.
    secret_ref = env[KEY_VARS[provider]]["valueFrom"]["secretKeyRef"]
    assert secret_ref["key"] == KEY_VARS[provider]
    assert not {KEY_VARS[p] for p in Provider if p is not provider} & set(env)
    secrets = {s["metadata"]["name"]: s for s in _by_kind("Secret")}
    assert set(secrets[secret_ref["name"]]["stringData"]) == {KEY_VARS[provider]}
    # Kubernetes waits longer than the worker's grace before its SIGKILL.
    grace = int(env["LLM_SHUTDOWN_GRACE"]["value"]) if "LLM_SHUTDOWN_GRACE" in env else GRACE_DEFAULT
    assert pod["terminationGracePeriodSeconds"] > grace
    # The probes and Prometheus's annotation name the port the worker serves /metrics on.
    port = int(env["LLM_METRICS_PORT"]["value"])
    assert {"name": "metrics", "containerPort": port, "protocol": "TCP"} in container["ports"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (
        deployment["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )


@pytest.mark.parametrize("provider", list(Provider))
def test_scaledobject_scales_the_worker_on_its_queue(provider: Provider) -> None:
    deployment = _worker_deployment(provider)
    (scaled,) = [
        s for s in _by_kind("ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    ]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    metadata = trigger["metadata"]
    assert set(metadata) <= REDIS_SCALER_KEYS, set(metadata) - REDIS_SCALER_KEYS
    # The LIST the workers claim from, under the default prefix.
    assert metadata["listName"] == Keys(FleetSettings.model_fields["key_prefix"].default).queue(provider.value)
    assert int(metadata["listLength"]) > 0
    redis_url = {e["name"]: e.get("value") for e in _container(deployment)["env"]}["REDIS_URL"]
    assert redis_url.startswith(f"redis://{metadata['address']}/{metadata['databaseIndex']}")
    assert 1 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]


def test_exporter_deployment_and_service() -> None:
    deployment, service = _deployment_and_service("exporter")
    container = _container(deployment)
    port = int(container["command"][container["command"].index("--port") + 1])
    assert {"name": "metrics", "containerPort": port, "protocol": "TCP"} in container["ports"]
    assert not {e["name"] for e in container["env"]} & set(KEY_VARS.values())
    assert deployment["spec"]["replicas"] == 1
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == "metrics"
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(service_port["port"])


def _deployment_and_service(command: str) -> tuple[dict[str, Any], dict[str, Any]]:
    (deployment,) = [d for d in _by_kind("Deployment") if _container(d)["command"][1] == command]
    (service,) = [s for s in _by_kind("Service") if s["metadata"]["name"] == deployment["metadata"]["name"]]
    return deployment, service


def test_gateway_deployment_and_service() -> None:
    deployment, service = _deployment_and_service("gateway")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    port = int(container["command"][container["command"].index("--port") + 1])
    assert {"name": "http", "containerPort": port, "protocol": "TCP"} in container["ports"]
    # Its tokens from a Secret that holds them and no provider key; no provider key in its environment.
    (source,) = container["envFrom"]
    secrets = {s["metadata"]["name"]: s for s in _by_kind("Secret")}
    assert set(secrets[source["secretRef"]["name"]]["stringData"]) == {"LLM_GATEWAY_TOKENS"}
    assert not {e["name"] for e in container["env"]} & set(KEY_VARS.values())
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # A long-poll in progress ends before Kubernetes's SIGKILL.
    assert pod["terminationGracePeriodSeconds"] > GatewaySettings.model_fields["max_wait_s"].default
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == "http"
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def test_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads((VENDORED / "compose-spec.json").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    jsonschema.Draft7Validator(schema).validate(compose)
    broken = copy.deepcopy(compose)
    broken["services"]["redis"]["stop_grace"] = "45s"
    with pytest.raises(jsonschema.ValidationError, match="stop_grace"):
        jsonschema.Draft7Validator(schema).validate(broken)
