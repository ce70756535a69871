"""``examples/otel-collector.yaml``: the properties the fleet relies on, read from the file itself.

The Collector built from ``collector/builder-config.yaml`` runs this very file in ``test_collector.py``
(and validates it there); these checks pin what that run cannot see at a glance: loopback by default,
memory limiter first, our scope only, a queue on disk that never gives up, a token on every request.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "otel-collector.yaml"
MANIFEST = ROOT / "collector" / "builder-config.yaml"
SECTIONS = ("receivers", "processors", "exporters", "extensions")
# ${env:NAME} or ${env:NAME:-default}, as the Collector's env provider expands them.
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    document = yaml.safe_load(CONFIG.read_text())
    assert isinstance(document, dict)
    return document


def defaults(value: str) -> str:
    """The text with each ``${env:NAME:-default}`` replaced by its default (what an agent runs with)."""
    return ENV_REF.sub(lambda m: m.group(2) if m.group(2) is not None else f"<{m.group(1)}>", value)


def built_types() -> dict[str, set[str]]:
    """Component types the manifest builds, from their Go module names (``.../otlpreceiver`` -> ``otlp``)."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    suffixes = {"receivers": "receiver", "processors": "processor", "exporters": "exporter", "extensions": ""}
    names = {"otlphttp": "otlp_http", "memorylimiter": "memory_limiter", "filestorage": "file_storage"}
    types: dict[str, set[str]] = {}
    for section, suffix in suffixes.items():
        types[section] = set()
        for entry in manifest.get(section) or []:
            module = entry["gomod"].split()[0].rsplit("/", 1)[1]
            stem = module.removesuffix(suffix) if suffix else module
            types[section].add(names.get(stem, stem))
    return types


def test_the_manifest_pins_one_release_train() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    versions = {
        entry["gomod"].split()[1] for section in (*SECTIONS, "providers") for entry in manifest.get(section) or []
    }
    assert versions == {"v0.161.0", "v1.67.0"}  # core 0.161 / stable 1.67, contrib 0.161
    assert 'builder_version="v0.161.0"' in (ROOT / "collector" / "build.sh").read_text()


def test_pipelines_use_only_defined_and_built_components(config: dict[str, Any]) -> None:
    pipelines = config["service"]["pipelines"]
    assert pipelines, "no pipeline"
    built = built_types()
    for name, pipeline in pipelines.items():
        assert name.split("/")[0] in ("logs", "traces", "metrics"), name
        assert pipeline["receivers"] and pipeline["exporters"], name
        for section in ("receivers", "processors", "exporters"):
            for component in pipeline.get(section) or []:
                assert component in (config.get(section) or {}), f"{name}: {section} {component!r} is not defined"
    for extension in config["service"]["extensions"]:
        assert extension in config["extensions"]
    for section in SECTIONS:
        for component in config.get(section) or {}:
            assert re.fullmatch(r"[a-z_]+(/[A-Za-z0-9_.\-]+)?", component), component
            assert component.split("/")[0] in built[section], f"{section} {component!r} is not in the build manifest"


def test_the_logs_pipeline_filters_to_sqreen_events_and_limits_memory_first(config: dict[str, Any]) -> None:
    (logs,) = [p for name, p in config["service"]["pipelines"].items() if name.split("/")[0] == "logs"]
    processors = logs["processors"]
    assert processors[0] == "memory_limiter"  # the collector's own advice: first in every pipeline
    assert processors[-1] == "batch"
    conditions = [
        c for p in processors if p.startswith("filter") for c in config["processors"][p]["logs"]["log_record"]
    ]
    assert conditions == ['instrumentation_scope.name != "sqreen_otel"']  # drop what is not ours


def test_receivers_bind_loopback_by_default(config: dict[str, Any]) -> None:
    endpoints = []
    for receiver in config["receivers"].values():
        for protocol in (receiver.get("protocols") or {}).values():
            endpoints.append(defaults(protocol["endpoint"]))  # an unset endpoint would mean all interfaces
    assert len(endpoints) == 2
    for endpoint in endpoints:
        host, _, port = endpoint.rpartition(":")
        host = host.strip("[]")
        assert host == "localhost" or ipaddress.ip_address(host).is_loopback, endpoint
        assert port.isdigit()
    prometheus = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    assert ipaddress.ip_address(prometheus["host"]).is_loopback


def test_the_explorer_exporter_has_a_token_and_a_queue_on_disk_that_never_gives_up(config: dict[str, Any]) -> None:
    explorer = config["exporters"]["otlp_http/explorer"]
    assert explorer["logs_endpoint"] == "${env:EXPLORER_URL}/v1/logs"  # required: no default to fall back on
    assert explorer["headers"]["Authorization"] == "Bearer ${env:EXPLORER_TOKEN}"
    assert explorer["retry_on_failure"]["enabled"] is True
    assert explorer["retry_on_failure"]["max_elapsed_time"] in (0, "0s")
    queue = explorer["sending_queue"]
    assert queue["enabled"] is True
    assert queue["storage"] in config["service"]["extensions"]
    assert queue["storage"].split("/")[0] == "file_storage"


def test_the_readme_shows_the_tested_config_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    fleets = readme[readme.index("\n## Fleets\n") :]
    shown = fleets[fleets.index("```yaml\n") + len("```yaml\n") :]
    shown = shown[: shown.index("```\n")]
    config = CONFIG.read_text()
    assert shown == config[config.index("extensions:\n") :]
