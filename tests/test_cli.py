"""``sqreen-otel`` client commands (the venv's console script) against a real explorer on loopback.

``import`` of JSON Lines and CSV files with good and bad lines, ``tail`` as a running process, the
block commands and what ``/v1/actions`` serves after them, and the errors when nothing listens.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from explorer_process import CLI, ENV, HOST, MiB, free_port, http, serve

from sqreen_otel.actions import parse_actions

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX subprocesses and signals")


def run(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, env={**ENV, **env}, timeout=timeout)


def events(url: str, **params: str) -> list[dict[str, Any]]:
    response = http.get(url + "/api/events", params={"limit": "500", **params}, timeout=10)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["events"]
    return result


def summary_line(stdout: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"read ([\d,]+), sent ([\d,]+), rejected ([\d,]+)\n", stdout)
    assert match, stdout
    read, sent, rejected = (int(g.replace(",", "")) for g in match.groups())
    assert read == sent + rejected
    return read, sent, rejected


def reported(stderr: str, path: Path) -> dict[int, str]:
    """``FILE:LINE: reason`` lines of stderr."""
    prefix = re.escape(str(path))
    return {int(m[1]): m[2] for m in re.finditer(rf"^{prefix}:(\d+): (?!warning)(.*)$", stderr, re.M)}


# -- import: JSON Lines --------------------------------------------------------------------------------


def test_import_jsonl_sends_good_lines_with_their_timestamps_and_rejects_bad_ones(
    explorer: str, tmp_path: Path
) -> None:
    long_value = "x" * MiB
    lines = [
        '{"name": "imp.login", "timestamp": "2024-05-01T12:00:00Z", "properties": {"attempt": 3, '
        '"password": "hunter2"}, "user_identifiers": {"email": "alice@example.com"}}',
        '{"name": "imp.login", "timestamp": "2024-05-01T14:00:00.250+02:00", "user_identifiers": {"id": 7}}',
        '{"name": "imp.login", "timestamp": "2024-05-01T12:00:01"}',  # naive: UTC
        "",  # blank: skipped, not counted
        "this is not json",
        '{"timestamp": "2024-05-01T12:00:00Z", "properties": {"a": 1}}',
        '{"name": "imp.login", "timestamp": "yesterday"}',
        '{"name": "sq.custom.login", "timestamp": 1714564800}',  # sq. names are the SDK's
        '{"name": "imp.login", "timestamp": 1714564800, "user_identifiers": {"email": ["a", "b"]}}',
        '{"name": "imp.login", "timestamp": 1714564800, "properties": ["not", "a", "mapping"]}',
        json.dumps({"name": "imp.long", "timestamp": 1714564800, "properties": {"blob": long_value}}),
        '{"name": "imp.epoch", "timestamp": 1714564800.5, "properties": {}}',
        '{"name": "imp.login", "timestamp": 1714564800000}',
        '{"name": "imp.login", "time": "2024-05-01T12:00:00Z"}',
        "[1, 2, 3]",
        '{"name": 42, "timestamp": 1714564800}',
        '{"name": "imp.epoch", "timestamp": "1714564801"}',
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"name": "imp.latin1", "t": "caf\xe9"}\n')
    result = run("import", str(path), "--endpoint", explorer + "/v1/logs")
    assert result.returncode == 1, result.stderr
    assert summary_line(result.stdout) == (17, 5, 12)

    expected = {
        5: "bad JSON",
        6: "missing name",
        7: "bad timestamp 'yesterday'",
        8: "reserved name 'sq.custom.login'",
        9: "user_identifiers['email'] must be str or int, got list",
        10: "properties must be a mapping, not list",
        11: "line longer than 1,048,576 bytes",
        13: "bad timestamp 1714564800000: out of range (milliseconds?",
        14: "unknown field(s) 'time'",
        15: "expected a JSON object, got an array",
        16: "event name must be a str, not int",
        18: "not UTF-8 text",
    }
    got = reported(result.stderr, path)
    assert sorted(got) == sorted(expected)
    for number, reason in expected.items():
        assert got[number].startswith(reason), (number, got[number])

    rejected = (tmp_path / "events.jsonl.rejected").read_bytes().decode("utf-8", "replace").splitlines()
    assert len(rejected) == len(expected)
    for line, (number, reason) in zip(rejected, sorted(expected.items()), strict=True):
        obj = json.loads(line)
        assert obj.pop("_rejected_reason").startswith(reason)
        if "_rejected_line" in obj:  # not an object: the line as text
            if number != 18:
                assert obj == {"_rejected_line": lines[number - 1]}
        else:  # the original object, with the reason inserted first
            assert obj == json.loads(lines[number - 1])
            assert line.endswith(lines[number - 1].lstrip("{"))
    assert json.loads(rejected[6])["_rejected_line"] == lines[10]  # the whole 1 MiB line is kept

    logins = events(explorer, name="imp.login")
    assert sorted(e["time_ns"] for e in logins) == [1714564800000000000, 1714564800250000000, 1714564801000000000]
    first = next(e for e in logins if e["time_ns"] == 1714564800000000000)
    assert first["user"] == {"email": "alice@example.com"}
    assert first["attributes"]["sqreen.properties.attempt"] == 3
    assert first["attributes"]["sqreen.properties.password"] == "[REDACTED]"  # scrubbed by the pipeline
    assert abs(first["received_ns"] - time.time_ns()) < 60 * 10**9  # stored now, dated then
    assert sorted(e["time_ns"] for e in events(explorer, name="imp.epoch")) == [1714564800500000000, 1714564801 * 10**9]
    assert events(explorer, name="sq.custom.login") == []

    # The rejected file imports as it is: each line is rejected again, its reason replaced, not doubled.
    again = run("import", str(tmp_path / "events.jsonl.rejected"), "--endpoint", explorer + "/v1/logs")
    assert again.returncode == 1 and summary_line(again.stdout) == (12, 0, 12)
    twice = (tmp_path / "events.jsonl.rejected.rejected").read_text("utf-8", "replace").splitlines()
    assert [line.count('"_rejected_reason"') for line in twice] == [1] * 12


def test_import_of_good_lines_only_exits_0_and_leaves_no_rejected_file(explorer: str, tmp_path: Path) -> None:
    path = tmp_path / "good.ndjson"
    stale = tmp_path / "good.ndjson.rejected"
    stale.write_text("from an earlier run\n")
    n = 5000  # more than one flush chunk
    path.write_text(
        "".join(
            json.dumps({"name": "imp.bulk", "timestamp": 1700000000 + i, "properties": {"i": i}}) + "\n"
            for i in range(n)
        )
    )
    result = run("import", str(path), "--endpoint", explorer + "/v1/logs")
    assert result.returncode == 0, result.stderr
    assert summary_line(result.stdout) == (n, n, 0)
    assert result.stderr == ""  # no terminal: no progress bar, nothing to report
    assert not stale.exists()
    summary = http.get(explorer + "/api/summary", timeout=5).json()["names"]
    bulk = next(s for s in summary if s["name"] == "imp.bulk")
    assert (bulk["count"], bulk["first_ns"], bulk["last_ns"]) == (n, 1700000000 * 10**9, (1700000000 + n - 1) * 10**9)


# -- import: CSV ---------------------------------------------------------------------------------------


def test_import_csv(explorer: str, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    rows = [
        "name,timestamp,properties.plan,properties.note,user.email,user.id",
        "csv.signup,2024-01-02T03:04:05Z,pro,,bob@example.com,17",
        ",2024-01-02T03:04:05Z,pro,,,",
        "csv.signup,,pro,,,",
        "csv.signup,not a time,pro,,,",
        'csv.note,1704164645,free,"two\nlines",carol@example.com,',
        "csv.signup,2024-01-02T03:04:05Z,too,many,cells,here,!",
        "sq.custom.signup,2024-01-02T03:04:05Z,,,x@example.com,",
        'csv.bad,2024-01-02T03:04:05Z,"bad"quote,,,',
        "csv.signup,2024-01-02T03:04:06+01:00,,,dave@example.com,",
        f"csv.long,2024-01-02T03:04:05Z,{'x' * MiB},,,",
    ]
    path.write_text("\r\n".join(rows) + "\r\n")
    result = run("import", str(path), "--endpoint", explorer + "/v1/logs")
    assert result.returncode == 1, result.stderr
    assert summary_line(result.stdout) == (10, 3, 7)
    expected = {
        3: "missing name",
        4: "missing timestamp",
        5: "bad timestamp 'not a time'",
        8: "expected 6 cells as in the header, got 7",
        9: "reserved name 'sq.custom.signup'",
        10: "bad CSV",
        12: "line longer than 1,048,576 bytes",
    }
    got = reported(result.stderr, path)
    assert sorted(got) == sorted(expected)
    for number, reason in expected.items():
        assert got[number].startswith(reason), (number, got[number])

    csv.field_size_limit(4 * MiB)
    with open(tmp_path / "events.csv.rejected", newline="") as f:
        rejected = list(csv.reader(f))
    assert rejected[0] == [*rows[0].split(","), "rejected_reason"]
    row_of_line = {3: 2, 4: 3, 5: 4, 8: 6, 9: 7}  # the note's quoted cell spans lines 6 and 7
    originals = {number: next(csv.reader(io.StringIO(rows[index]))) for number, index in row_of_line.items()}
    parsed = [row for row in rejected[1:] if not row[-1].startswith(("bad CSV", "line longer"))]
    assert [row[:-1] for row in parsed] == list(originals.values())
    assert [row[-1] for row in parsed] == [got[n] for n in originals]
    raw_lines = (tmp_path / "events.csv.rejected").read_text().splitlines()
    assert raw_lines[-2].startswith(rows[8] + ",")  # not CSV: the line as it was, plus the reason
    assert raw_lines[-1] == rows[10] + ',"line longer than 1,048,576 bytes"'  # kept whole
    assert events(explorer, name="csv.long") == []

    signups = events(explorer, name="csv.signup")
    assert sorted(e["time_ns"] for e in signups) == [1704164646000000000 - 3600 * 10**9, 1704164645000000000]
    bob = next(e for e in signups if e["user"].get("email") == "bob@example.com")
    assert bob["user"] == {"email": "bob@example.com", "id": "17"}
    assert bob["attributes"]["sqreen.properties.plan"] == "pro"
    assert "sqreen.properties.note" not in bob["attributes"]  # empty cells are left out
    (note,) = events(explorer, name="csv.note")
    assert note["time_ns"] == 1704164645000000000 and note["attributes"]["sqreen.properties.note"] == "two\nlines"


def test_import_csv_with_a_bad_header_stops_before_sending(explorer: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("name,when,props.x\ncsv.never,2024-01-01T00:00:00Z,1\n")
    result = run("import", str(path), "--endpoint", explorer + "/v1/logs")
    assert result.returncode == 2
    assert "unknown column 'when'" in result.stderr
    assert events(explorer, name="csv.never") == []


def test_import_without_a_listening_endpoint_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "lost.jsonl"
    path.write_text('{"name": "lost", "timestamp": 1700000000}\n{"name": "lost", "timestamp": 1700000001}\n')
    result = run("import", str(path), "--endpoint", f"http://{HOST}:{free_port()}/v1/logs")
    assert result.returncode == 2
    assert summary_line(result.stdout) == (2, 2, 0)
    assert "export did not complete: 0 of 2 event(s) delivered" in result.stderr
    assert "ConnectionError" in result.stderr


def test_files_that_cannot_be_imported_exit_2(tmp_path: Path) -> None:
    (tmp_path / "events.txt").write_text("")
    result = run("import", str(tmp_path / "events.txt"))
    assert result.returncode == 2 and "--format jsonl, csv or otlp" in result.stderr
    result = run("import", str(tmp_path / "missing.jsonl"))
    assert result.returncode == 2 and "cannot read" in result.stderr
    array = tmp_path / "array.json"
    array.write_text('[{"name": "a", "timestamp": 1700000000},\n {"name": "b", "timestamp": 1700000000}]\n')
    result = run("import", str(array), "--endpoint", f"http://{HOST}:{free_port()}/v1/logs")
    assert result.returncode == 2 and "looks like a JSON array: import reads JSON Lines" in result.stderr
    (tmp_path / "one.jsonl").write_text('{"name": "a", "timestamp": 1700000000}\n')
    result = run("import", str(tmp_path / "one.jsonl"), SQREEN_OTEL_DISABLED="true")
    assert result.returncode == 2 and "SQREEN_OTEL_DISABLED is set" in result.stderr


# -- tail ----------------------------------------------------------------------------------------------


def post_json_events(url: str, *records: dict[str, Any]) -> None:
    log_records = []
    for record in records:
        attributes = [
            {"key": k, "value": {"stringValue": v} if isinstance(v, str) else {"intValue": str(v)}}
            for k, v in record.get("attributes", {}).items()
        ]
        log_records.append(
            {"eventName": record["name"], "timeUnixNano": str(record["time_ns"]), "attributes": attributes}
        )
    document = {"resourceLogs": [{"scopeLogs": [{"logRecords": log_records}]}]}
    response = http.post(url + "/v1/logs", json=document, timeout=5)
    assert response.status_code == 200, response.text


@contextlib.contextmanager
def tailing(*args: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """``sqreen-otel tail`` running; yields it and, after the block, its output lines."""
    output: list[str] = []
    proc = subprocess.Popen(
        [CLI, "tail", "--interval", "0.1", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()  # printed once it knows where to start
        assert banner.startswith("following events at"), banner + proc.stderr.read()
        yield proc, output
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        output.extend(out.splitlines())
    assert proc.returncode == 0, err


def test_tail_prints_only_new_events_until_stopped(explorer: str) -> None:
    post_json_events(explorer, {"name": "tail.old", "time_ns": 1_800_000_000_000_000_000})  # newest by time
    with tailing("--url", explorer) as (_, output):
        post_json_events(
            explorer,
            {
                "name": "tail.login",
                "time_ns": 1_714_564_800_123_000_000,
                "attributes": {
                    "sqreen.user.email": "alice@example.com",
                    "client.address": "203.0.113.9",
                    "url.path": "/login",
                    "http.request.method": "POST",
                    "sqreen.properties.attempt": 3,
                    "sqreen.properties.reason": "wrong password",
                },
            },
            {
                "name": "tail.\x1b[31mred",
                "time_ns": 1_714_564_801_000_000_000,
                "attributes": {"sqreen.properties.ua": "evil\x1b]0;pwned\x07"},
            },
        )
        time.sleep(1.0)  # several polls
    assert output == [
        "2024-05-01T12:00:00.123Z  tail.login  user=email:alice@example.com  ip=203.0.113.9  POST /login  "
        'attempt=3  reason="wrong password"',
        '2024-05-01T12:00:01.000Z  "tail.\\u001b[31mred"  ua="evil\\u001b]0;pwned\\u0007"',
    ]
    assert not any("\x1b" in line for line in output)  # nothing reaches the terminal as a control sequence


def test_tail_starts_after_the_newest_id_catches_up_past_full_pages_and_filters(explorer: str) -> None:
    # The newest event by time is not the newest by id: 1,200 older-dated events arrived after it.
    post_json_events(explorer, {"name": "tail.future", "time_ns": 1_900_000_000_000_000_000})
    post_json_events(explorer, *({"name": "tail.many", "time_ns": 1_600_000_000_000_000_000 + i} for i in range(1200)))
    with tailing("--url", explorer, "--name", "tail.many") as (_, output):
        post_json_events(
            explorer, *({"name": "tail.many", "time_ns": 1_700_000_000_000_000_000 + i} for i in range(1200))
        )
        post_json_events(explorer, {"name": "tail.other", "time_ns": 1_700_000_000_000_000_000})
        time.sleep(1.5)
    assert len(output) == 1200
    assert output[0].startswith("2023-11-14T22:13:20.000Z  tail.many") and all("  tail.many" in x for x in output)
    with tailing("--url", explorer, "--from-start", "--name", "tail.old") as (_, output):
        time.sleep(0.5)
    assert output == ["2027-01-15T08:00:00.000Z  tail.old"]


def test_tail_rides_out_an_explorer_restart(tmp_path: Path) -> None:
    with serve(tmp_path) as url:
        proc = subprocess.Popen(
            [CLI, "tail", "--interval", "0.1", "--url", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        assert proc.stderr is not None and proc.stderr.readline().startswith("following events at")
    try:
        time.sleep(0.5)  # its polls fail meanwhile
        with serve(tmp_path, port=int(url.rsplit(":", 1)[1])):  # the same database on the same port
            post_json_events(url, {"name": "restart.after", "time_ns": 1_700_000_000_000_000_000})
            time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert out.splitlines() == ["2023-11-14T22:13:20.000Z  restart.after"]
    assert "lost the explorer: cannot connect: is the explorer running at" in err
    assert "explorer back" in err


def test_tail_and_block_commands_without_an_explorer(tmp_path: Path) -> None:
    url = f"http://{HOST}:{free_port()}"
    for args in (
        ["tail"],
        ["tail", "--from-start"],
        ["actions"],
        ["block-user", "--id", "email=x@example.com"],
        ["block-ip", "10.0.0.1"],
        ["unblock-user", "--id", "email=x@example.com"],
        ["unblock-ip", "10.0.0.1"],
    ):
        result = run(*args, "--url", url, timeout=30)
        assert result.returncode == 1, args
        assert f"is the explorer running at {url}?" in result.stderr, result.stderr


# -- block commands ------------------------------------------------------------------------------------


def feed(url: str) -> dict[str, Any]:
    response = http.get(url + "/v1/actions", timeout=5)
    assert response.status_code == 200
    parse_actions(response.content, "url")  # what agents accept
    document: dict[str, Any] = response.json()
    return document


def test_block_and_unblock_commands_change_the_actions_feed(explorer: str) -> None:
    url = ["--url", explorer]
    result = run("actions", *url)
    assert (result.returncode, result.stdout) == (0, "no block actions\n")

    result = run("block-user", "--id", "email=mallory@example.com", "--id", "tenant=acme", "--duration", "600", *url)
    assert result.returncode == 0, result.stderr
    user_action = re.search(r"\(action (\w+)\)", result.stdout)[1]  # type: ignore[index]
    result = run("block-ip", "203.0.113.0/24", *url)
    assert result.returncode == 0, result.stderr
    ip_action = re.search(r"\(action (\w+)\)", result.stdout)[1]  # type: ignore[index]
    actions = {a["id"]: a for a in feed(explorer)["actions"]}
    assert actions[user_action]["user"] == {"email": "mallory@example.com", "tenant": "acme"}
    assert actions[user_action]["expires_at"] is not None
    assert actions[ip_action] == {"id": ip_action, "action": "block_ip", "ip": "203.0.113.0/24", "expires_at": None}

    listed = run("actions", *url).stdout.splitlines()
    assert listed[0].startswith(f"{user_action}  manual  block_user email=mallory@example.com,tenant=acme (expires 20")
    assert listed[1] == f"{ip_action}  manual  block_ip 203.0.113.0/24 (expires never)"
    assert {a["id"] for a in json.loads(run("actions", "--json", *url).stdout)} == {user_action, ip_action}

    # An address inside the blocked network: no block of its own, and still blocked: says so, exit 1.
    result = run("unblock-ip", "203.0.113.7", *url)
    assert result.returncode == 1
    assert f"still blocked by action {ip_action}" in result.stderr
    assert len(feed(explorer)["actions"]) == 2

    result = run("unblock-ip", "203.0.113.0/24", *url)
    assert (result.returncode, result.stdout) == (0, "unblocked 203.0.113.0/24 (1 block(s) removed)\n")
    result = run("unblock-user", "--id", "tenant=acme", "--id", "email=mallory@example.com", *url)
    assert result.returncode == 0, result.stderr
    assert feed(explorer)["actions"] == []

    result = run("block-ip", "999.1.1.1", *url)
    assert result.returncode == 1
    assert "'999.1.1.1' is not an IP address or network (400)" in result.stderr
    result = run("block-user", "--id", "email", *url)
    assert result.returncode == 2 and "--id must be KEY=VALUE" in result.stderr
    result = run("block-ip", "10.0.0.1", "--duration", "-5", *url)
    assert result.returncode == 2
    assert feed(explorer)["actions"] == []


def test_commands_against_a_token_protected_explorer(tmp_path: Path) -> None:
    with serve(tmp_path, "--token", "tok") as url:
        result = run("actions", "--url", url)
        assert result.returncode == 1 and "needs a token" in result.stderr
        result = run("actions", "--url", url, "--token", "wrong")
        assert result.returncode == 1 and "invalid token" in result.stderr
        result = run("block-ip", "10.0.0.1", "--url", url, "--token", "tok")
        assert result.returncode == 0, result.stderr
        path = tmp_path / "one.jsonl"
        path.write_text('{"name": "tok.event", "timestamp": 1700000000}\n')
        assert run("import", str(path), "--endpoint", url + "/v1/logs").returncode == 2
        result = run("import", str(path), "--endpoint", url + "/v1/logs", "--token", "tok")
        assert result.returncode == 0, result.stderr
        result = run("import", str(path), "--endpoint", url + "/v1/logs", SQREEN_OTEL_EXPLORER_TOKEN="tok")
        assert result.returncode == 0, result.stderr
        response = http.get(url + "/api/events", headers={"Authorization": "Bearer tok"}, timeout=5)
        assert [e["name"] for e in response.json()["events"]] == ["tok.event", "tok.event"]
        result = run("actions", SQREEN_OTEL_EXPLORER_URL=url, SQREEN_OTEL_EXPLORER_TOKEN="tok")
        assert result.returncode == 0 and "block_ip 10.0.0.1 (expires never)" in result.stdout
