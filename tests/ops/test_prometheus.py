"""ops/prometheus.yml and ops/alerts.yml checked by promtool (Debian's `prometheus` package, which `make test`
installs where it is missing), the alerts' unit tests run, and the dashboard's shape checked against the
provisioning that loads it. tests/e2e/test_prometheus_stack.py runs all of it against a live fleet."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
DASHBOARD = OPS / "grafana" / "dashboards" / "llm-fleet.json"
METRICS = ROOT / "README.md"


def promtool(*args: str, cwd: Path = OPS) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: install Debian's prometheus package (`make test` does)")
    return subprocess.run([found, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((OPS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_promtool_checks_the_config_and_its_rule_file() -> None:
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout


def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in done.stdout


def test_promtool_runs_the_alerts_unit_tests() -> None:
    done = promtool("test", "rules", "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_fails_a_broken_rule(tmp_path: Path) -> None:
    """The checks above can fail: an alert whose expression does not parse is refused."""
    groups = yaml.safe_load((OPS / "alerts.yml").read_text())
    groups["groups"][0]["rules"][0]["expr"] = "llm_queue_depth >"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(groups))
    done = promtool("check", "rules", "alerts.yml", cwd=tmp_path)
    assert done.returncode != 0
    assert "parse error" in done.stdout + done.stderr


def test_every_alert_is_unit_tested_and_says_what_to_do() -> None:
    tests = yaml.safe_load((OPS / "alerts.test.yml").read_text())["tests"]
    fired = {
        case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]
    }  # each alert is seen firing, not just evaluated
    operations = METRICS.read_text().split("## Operations", 1)[1].split("\n## ", 1)[0]
    for rule in alert_rules():
        assert rule["alert"] in fired, rule["alert"]
        assert {"summary", "description", "action"} <= set(rule["annotations"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert f"`{rule['alert']}`" in operations, f"README's Operations section does not explain {rule['alert']}"


def test_dashboard_is_provisioned_with_a_provider_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasources = yaml.safe_load((OPS / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (datasource,) = datasources["datasources"]
    (variable,) = dashboard["templating"]["list"]
    assert variable["name"] == "provider" and variable["multi"] and variable["includeAll"]
    panels = dashboard_panels()
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    operations = METRICS.read_text().split("## Operations", 1)[1].split("\n## ", 1)[0]
    for panel in panels:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert panel["description"], panel["title"]
        assert f"**{panel['title']}**" in operations, f"README's Operations section does not explain {panel['title']}"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource["uid"]
            # Per provider: every query over a provider-labelled metric follows the variable.
            for selector in re.findall(r"(llm_\w+)(\{[^}]*\})?", target["expr"]):
                if not selector[0].startswith(("llm_budget", "llm_redis")):
                    assert 'provider=~"$provider"' in selector[1], (panel["title"], target["expr"])


def test_dashboard_covers_what_the_issue_asks_for() -> None:
    queried = " ".join(t["expr"] for p in dashboard_panels() for t in p["targets"])
    for metric in (
        "llm_queue_depth",  # queue depth
        "llm_requests_total",  # throughput
        "llm_requests_duration_seconds_bucket",  # latency percentiles
        "llm_time_to_first_token_seconds_bucket",
        "llm_tokens_total",
        "llm_errors_total",
        "llm_cost_usd_total",
    ):
        assert metric in queried, metric
