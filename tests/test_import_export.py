"""``sqreen-otel export`` and ``import`` against real explorers: a dataset round-trips between two explorers,
export filters, and OTLP JSON files (one document over many lines, or one per line as the Collector's
``fileexporter`` writes, here made from the agent's own export) import as events.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from explorer_process import CLI, ENV, HOST, free_port, http, serve
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from sqreen_otel.receiver import Receiver

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX subprocesses")


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=ENV, timeout=timeout)


def stored(url: str, **params: str) -> list[dict[str, Any]]:
    response = http.get(url + "/api/events", params={"limit": "500", **params}, timeout=10)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def write_lines(path: Path, objects: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(obj) + "\n" for obj in objects))
    return path


def test_export_writes_the_import_format_and_round_trips_between_explorers(explorer: str, tmp_path: Path) -> None:
    who = {"email": f"rt-{uuid.uuid4().hex[:8]}@example.com"}
    events: list[dict[str, Any]] = [
        {"name": "rt.login_failed", "timestamp": "2024-05-01T12:00:00.123456Z",
         "properties": {"reason": "bad password", "api_token": "s3cr3t", "nested": {"n": [1, 2]}},
         "user_identifiers": who, "ip": "::ffff:203.0.113.7", "user_agent": "curl/8.5", "path": "/login",
         "method": "POST", "params": {"next": "/home", "tag": ["a", "b"]}, "body": {"email": who["email"]}},
        {"name": "sq.sdk.users.login", "timestamp": 1714564801, "properties": {"success": False},
         "user_identifiers": who, "ip": "198.51.100.23"},
        {"name": "sq.action.block_user", "timestamp": "2024-05-01T12:00:02Z", "user_identifiers": who,
         "ip": "198.51.100.23", "path": "/login", "method": "POST", "action": {"id": "a1b2c3"}},
        {"name": "sq.sdk.users.signup", "timestamp": "2024-05-01T14:00:03+02:00", "user_identifiers": {**who, "id": 7}},
    ]  # fmt: skip
    result = run("import", str(write_lines(tmp_path / "in.jsonl", events)), "--endpoint", explorer + "/v1/logs")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "read 4, sent 4, rejected 0\n"

    first = run("export", "--url", explorer, "--user", who["email"])
    assert first.returncode == 0, first.stderr
    assert first.stderr == f"exported 4 event(s) from {explorer}\n"
    exported = [json.loads(line) for line in first.stdout.splitlines()]
    assert exported == [
        {"name": "rt.login_failed", "timestamp": "2024-05-01T12:00:00.123456Z",
         "properties": {"reason": "bad password", "api_token": "[REDACTED]", "nested": {"n": [1, 2]}},
         "user_identifiers": who, "ip": "203.0.113.7", "user_agent": "curl/8.5", "path": "/login", "method": "POST",
         "params": {"next": "/home", "tag": ["a", "b"]}, "body": {"email": who["email"]}},
        {"name": "sq.sdk.users.login", "timestamp": "2024-05-01T12:00:01.000000Z", "properties": {"success": False},
         "user_identifiers": who, "ip": "198.51.100.23"},
        {"name": "sq.action.block_user", "timestamp": "2024-05-01T12:00:02.000000Z", "user_identifiers": who,
         "ip": "198.51.100.23", "path": "/login", "method": "POST", "action": {"id": "a1b2c3"}},
        {"name": "sq.sdk.users.signup", "timestamp": "2024-05-01T12:00:03.000000Z",
         "user_identifiers": {**who, "id": 7}},
    ]  # fmt: skip

    dataset = tmp_path / "dataset.jsonl"
    dataset.write_text(first.stdout)
    with serve(tmp_path) as other:  # a second explorer, its own database
        again = run("import", str(dataset), "--endpoint", other + "/v1/logs")
        assert (again.returncode, again.stdout) == (0, "read 4, sent 4, rejected 0\n"), again.stderr
        second = run("export", "--url", other)
        assert second.returncode == 0, second.stderr
        assert second.stdout == first.stdout  # byte for byte: nothing lost or changed on the way
        login = stored(other, name="sq.sdk.users.login")
        assert [(e["user"], e["client_address"], e["time_ns"]) for e in login] == [
            (who, "198.51.100.23", 1714564801 * 10**9)
        ]
        (refusal,) = stored(other, name="sq.action.block_user")
        assert refusal["attributes"]["sqreen.action.id"] == "a1b2c3" and refusal["path"] == "/login"


def test_export_filters_and_errors(explorer: str, tmp_path: Path) -> None:
    who = f"flt-{uuid.uuid4().hex[:8]}@example.com"
    recent = time.time() - 60
    events: list[dict[str, Any]] = [
        {"name": "flt.a", "timestamp": recent, "user_identifiers": {"email": who}, "ip": "192.0.2.1"},
        {"name": "flt.b", "timestamp": recent, "user_identifiers": {"email": who}, "ip": "192.0.2.2",
         "properties": {"plan": "pro"}},
        {"name": "flt.a", "timestamp": "2018-03-15T14:42:00Z", "user_identifiers": {"email": who}, "ip": "192.0.2.1"},
    ]  # fmt: skip
    result = run("import", str(write_lines(tmp_path / "f.jsonl", events)), "--endpoint", explorer + "/v1/logs")
    assert result.returncode == 0, result.stderr

    def names(*args: str) -> list[tuple[str, str]]:
        out = run("export", "--url", explorer, "--user", who, *args)
        assert out.returncode == 0, out.stderr
        return [(e["name"], e["timestamp"][:4]) for e in map(json.loads, out.stdout.splitlines())]

    this_year = time.strftime("%Y", time.gmtime(recent))
    assert names() == [("flt.a", this_year), ("flt.b", this_year), ("flt.a", "2018")]  # stored order
    assert names("--since", "1h") == [("flt.a", this_year), ("flt.b", this_year)]
    assert names("--until", "1d") == [("flt.a", "2018")]
    assert names("--since", "2018-01-01", "--until", "2019-01-01T00:00:00Z") == [("flt.a", "2018")]
    assert names("--name", "flt.b") == [("flt.b", this_year)]
    assert names("--ip", "192.0.2.1", "--since", "2w") == [("flt.a", this_year)]
    assert names("--prop", "plan=pro") == [("flt.b", this_year)]

    bad = run("export", "--url", explorer, "--since", "yesterday")
    assert (bad.returncode, bad.stdout) == (2, "")
    assert "expected a duration (7d, 24h, 30m, 90s, 2w), ISO 8601 or epoch seconds, got 'yesterday'" in bad.stderr
    nobody = run("export", "--url", f"http://{HOST}:{free_port()}")
    assert nobody.returncode == 1 and "is the explorer running" in nobody.stderr and nobody.stdout == ""


# The example of the opentelemetry-proto repository (examples/logs.json), with a second record that is an event.
PROTO_EXAMPLE = """{
  "resourceLogs": [
    {
      "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
      "scopeLogs": [
        {
          "scope": {"name": "my.library", "version": "1.0.0",
                    "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
          "logRecords": [
            {
              "timeUnixNano": "1544712660300000000",
              "observedTimeUnixNano": "1544712660300000000",
              "severityNumber": 10,
              "severityText": "Information",
              "traceId": "5B8EFFF798038103D269B633813FC60C",
              "spanId": "EEE19B7EC3C1B174",
              "body": {"stringValue": "Example log record"},
              "attributes": [
                {"key": "string.attribute", "value": {"stringValue": "some string"}},
                {"key": "boolean.attribute", "value": {"boolValue": true}},
                {"key": "int.attribute", "value": {"intValue": "10"}},
                {"key": "double.attribute", "value": {"doubleValue": 637.704}},
                {"key": "array.attribute", "value": {"arrayValue": {"values": [{"stringValue": "many"},
                                                                               {"stringValue": "values"}]}}},
                {"key": "map.attribute", "value": {"kvlistValue": {"values": [
                  {"key": "some.map.key", "value": {"stringValue": "some value"}}]}}}
              ]
            },
            {
              "eventName": "otlp.device.login",
              "observedTimeUnixNano": "1544712661300000000",
              "attributes": [
                {"key": "sqreen.user.email", "value": {"stringValue": "eve@example.com"}},
                {"key": "client.address", "value": {"stringValue": "192.0.2.9"}},
                {"key": "sqreen.properties.attempt", "value": {"intValue": "3"}},
                {"key": "device.model", "value": {"stringValue": "phone"}}
              ]
            }
          ]
        }
      ]
    }
  ]
}
"""


def test_import_reads_an_otlp_json_document_spread_over_lines(explorer: str, tmp_path: Path) -> None:
    path = tmp_path / "logs.json"
    path.write_text(PROTO_EXAMPLE)
    result = run("import", str(path), "--endpoint", explorer + "/v1/logs")
    assert result.returncode == 1, result.stderr
    assert result.stdout == "read 2, sent 1, rejected 1\n"
    assert (
        f"{path}:1: record 1: missing name: the record has no eventName (nor an event.name attribute)" in result.stderr
    )
    (event,) = stored(explorer, name="otlp.device.login")
    assert event["time_ns"] == 1544712661300000000  # no timeUnixNano: the observed time
    assert (event["user"], event["client_address"]) == ({"email": "eve@example.com"}, "192.0.2.9")
    props = {k: v for k, v in event["attributes"].items() if k.startswith("sqreen.properties.")}
    assert props == {"sqreen.properties.attempt": 3, "sqreen.properties.device.model": "phone"}
    (rejected,) = map(json.loads, (tmp_path / "logs.json.rejected").read_text().splitlines())
    assert rejected["_rejected_reason"].startswith("missing name") and rejected["name"] is None
    assert rejected["properties"]["array.attribute"] == ["many", "values"]  # fill in a name and import it


# In a subprocess: the agent exports to the receiver, one batch per flush, one event inside a request.
_AGENT = """
import sys, io, sqreen_otel
sqreen_otel.configure(endpoint=sys.argv[1], flush_interval=60)
environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/login", "QUERY_STRING": "next=%2Fhome", "wsgi.input": io.BytesIO(),
           "REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.77, 10.0.0.1", "HTTP_USER_AGENT": "ua/1"}
sqreen_otel.track("fx.password_reset", {"properties": {"channel": "email"}, "request": environ,
                                        "user_identifiers": {"email": "fx@example.com"}})
assert sqreen_otel.flush(10)
sqreen_otel.auth_track(False, email="fx@example.com")
assert sqreen_otel.flush(10)
sqreen_otel.shutdown()
"""


def otlp_json_line(body: bytes) -> str:
    """A protobuf request as OTLP JSON: proto3 JSON with the ids in hex, as the Collector's file exporter writes."""
    document = MessageToDict(ExportLogsServiceRequest.FromString(body))
    for resource_logs in document["resourceLogs"]:
        for scope_logs in resource_logs["scopeLogs"]:
            for record in scope_logs["logRecords"]:
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = base64.b64decode(record[key]).hex()
    return json.dumps(document, separators=(",", ":"))


def test_import_reads_otlp_json_lines_from_the_agent_s_own_export(explorer: str, tmp_path: Path) -> None:
    with Receiver() as receiver:
        agent = subprocess.run([sys.executable, "-c", _AGENT, receiver.endpoint], capture_output=True, text=True,
                               env=ENV, timeout=60)  # fmt: skip
        assert agent.returncode == 0, agent.stderr
        bodies = receiver.bodies()
    assert len(bodies) == 2
    path = tmp_path / "fileexporter.json"
    path.write_text(f"{otlp_json_line(bodies[0])}\n{{not json\n\n{otlp_json_line(bodies[1])}\n")
    result = run("import", str(path), "--endpoint", explorer + "/v1/logs")
    assert result.returncode == 1, result.stderr
    assert result.stdout == "read 3, sent 2, rejected 1\n"
    assert f"{path}:2: bad OTLP JSON: invalid JSON" in result.stderr
    (reset,) = stored(explorer, name="fx.password_reset")
    assert (reset["client_address"], reset["method"], reset["path"]) == ("198.51.100.77", "POST", "/login")
    assert reset["attributes"]["sqreen.properties.channel"] == "email"
    assert reset["attributes"]["user_agent.original"] == "ua/1"
    assert reset["attributes"]["sqreen.request.params.next"] == "/home"
    assert reset["user"] == {"email": "fx@example.com"}
    logins = [e for e in stored(explorer, name="sq.sdk.users.login") if e["user"] == {"email": "fx@example.com"}]
    assert [e["attributes"]["sqreen.properties.success"] for e in logins] == [False]
    (rejected,) = map(json.loads, (tmp_path / "fileexporter.json.rejected").read_text().splitlines())
    assert rejected == {"_rejected_reason": rejected["_rejected_reason"], "_rejected_line": "{not json"}


def test_otlp_documents_are_split_by_their_brackets_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from sqreen_otel import importer

    def documents(data: bytes) -> list[tuple[int, int, bytes, str | None]]:
        return [(d.first, d.last, d.data, d.problem) for d in importer._documents(io.BytesIO(data))]

    pretty = b'{\n  "resourceLogs": [\n    {"s": "}{ \\" ]"}\n  ]\n}\n'  # brackets inside strings do not count
    assert documents(b"\xef\xbb\xbf" + pretty + b"\n" + b'{"resourceLogs":[]}\r\n') == [
        (1, 5, pretty.rstrip(b"\n") + b"\n", None),
        (7, 7, b'{"resourceLogs":[]}\r\n', None),
    ]
    assert documents(b'{"resourceLogs": [\n') == [
        (1, 1, b'{"resourceLogs": [\n', "unexpected end of the file inside a document")
    ]
    monkeypatch.setattr(importer, "MAX_DOCUMENT", 40)
    long_line = b'{"resourceLogs":["' + b"x" * 100 + b'"]}\n'
    spread = b'{"resourceLogs": [\n' + b'"0123456789",\n' * 3 + b"]}\n"
    assert documents(long_line + b'{"ok":1}\n' + spread + b'{"ok":2}\n') == [
        (1, 1, b"", "document longer than 40 bytes"),
        (2, 2, b'{"ok":1}\n', None),
        (3, 7, b"", "document longer than 40 bytes"),
        (8, 8, b'{"ok":2}\n', None),
    ]
