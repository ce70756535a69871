"""``examples/otel-collector.yaml``: well-formed, every component a pipeline names is defined, loopback only.

There is no OpenTelemetry Collector binary on this machine (``otelcol`` / ``otelcol-contrib``), so
this checks the file's structure the way the collector resolves it (component ids are ``type`` or
``type/name``); it does not prove that a given collector build accepts every option. With a
collector installed, ``otelcol-contrib validate --config examples/otel-collector.yaml`` does.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "otel-collector.yaml"
SECTIONS = {"receivers": "receivers", "processors": "processors", "exporters": "exporters"}
# Components of the core and contrib distributions that the example may use.
KNOWN_TYPES = {
    "receivers": {"otlp"},
    "processors": {"memory_limiter", "batch", "filter"},
    "exporters": {"otlphttp", "otlp", "debug"},
}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    document = yaml.safe_load(CONFIG.read_text())
    assert isinstance(document, dict)
    return document


def test_pipelines_use_only_defined_components(config: dict[str, Any]) -> None:
    pipelines = config["service"]["pipelines"]
    assert pipelines, "no pipeline"
    used: dict[str, set[str]] = {section: set() for section in SECTIONS}
    for name, pipeline in pipelines.items():
        assert name.split("/")[0] in ("logs", "traces", "metrics"), name
        assert pipeline["receivers"] and pipeline["exporters"], name
        for section in SECTIONS:
            for component in pipeline.get(section) or []:
                assert component in (config.get(section) or {}), f"{name}: {section} {component!r} is not defined"
                used[section].add(component)
    for section in SECTIONS:
        defined = set(config.get(section) or {})
        for component in defined:
            assert re.fullmatch(r"[a-z_]+(/[A-Za-z0-9_.\-]+)?", component), component
            assert component.split("/")[0] in KNOWN_TYPES[section], f"unknown {section} type {component!r}"


def test_the_logs_pipeline_filters_to_sqreen_events_and_limits_memory_first(config: dict[str, Any]) -> None:
    (logs,) = [p for name, p in config["service"]["pipelines"].items() if name.split("/")[0] == "logs"]
    processors = logs["processors"]
    assert processors[0] == "memory_limiter"  # the collector's own advice: first in every pipeline
    assert processors[-1] == "batch"
    conditions = [
        c for p in processors if p.startswith("filter") for c in config["processors"][p]["logs"]["log_record"]
    ]
    assert conditions == ['instrumentation_scope.name != "sqreen_otel"']  # drop what is not ours


def test_receivers_bind_loopback_only(config: dict[str, Any]) -> None:
    endpoints = []
    for receiver in config["receivers"].values():
        for protocol in (receiver.get("protocols") or {}).values():
            endpoints.append(protocol["endpoint"])  # an unset endpoint would mean the default: all interfaces
    assert endpoints
    for endpoint in endpoints:
        host, _, port = endpoint.rpartition(":")
        host = host.strip("[]")
        assert host == "localhost" or ipaddress.ip_address(host).is_loopback, endpoint
        assert port.isdigit()


def test_the_explorer_exporter_sends_logs_with_a_token(config: dict[str, Any]) -> None:
    explorer = config["exporters"]["otlphttp/explorer"]
    assert explorer["logs_endpoint"].endswith("/v1/logs")
    assert explorer["headers"]["Authorization"].startswith("Bearer ${env:")
    assert explorer["retry_on_failure"]["enabled"] is True


def test_a_collector_accepts_it_when_one_is_installed() -> None:
    binary = shutil.which("otelcol-contrib") or shutil.which("otelcol")
    if binary is None:
        pytest.skip("no OpenTelemetry Collector binary on this machine")
    result = subprocess.run([binary, "validate", "--config", str(CONFIG)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
