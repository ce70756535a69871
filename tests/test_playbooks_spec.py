"""The playbook file format: what loads, and bad files reported with their line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sqreen_otel.explorer.playbooks import PlaybookError, load, loads
from sqreen_otel.explorer.playbooks.spec import parse_duration

ISSUE_EXAMPLE = """\
version: 1
allowlist:
  ips: ["10.0.0.0/8", "192.0.2.10"]
  users: [{email: "ops@example.com"}]
notify:
  security-slack: {slack: "${SLACK_WEBHOOK_URL}"}
  soc: {webhook: "https://soc.example.com/hooks/sqreen", secret: "${SOC_HMAC_KEY}"}
  oncall: {email: ["oncall@example.com"]}
playbooks:
  - id: credential-stuffing
    description: Many failed logins for many accounts from one IP
    mode: enforce
    when: {event: sq.sdk.users.login, where: "properties.success == false"}
    group_by: [client.address]
    threshold: {count: 20, within: 10m, distinct: {field: user.email, min: 10}}
    then:
      - block_ip: {duration: 1h, escalate: {factor: 2, max: 7d}}
      - notify: [security-slack]
  - id: distributed-bruteforce
    when: {event: sq.sdk.users.login, where: "properties.success == false"}
    group_by: [user.email]
    threshold: {count: 20, within: 15m, distinct: {field: client.address, min: 8}}
    then:
      - block_ip: {target: contributors, duration: 30m, max_targets: 200}
      - notify: [soc]
  - id: account-takeover
    description: A success right after many failures on one account
    when: {event: sq.sdk.users.login}
    group_by: [user.email]
    sequence:
      within: 20m
      steps:
        - {where: "properties.success == false", count: 5}
        - {where: "properties.success == true"}
    then:
      - block_user: {duration: 24h}
      - notify: [oncall]
"""
ENV = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x", "SOC_HMAC_KEY": "k3y"}


def test_the_issue_example_loads_with_its_environment() -> None:
    playbooks = loads(ISSUE_EXAMPLE, env=ENV)
    assert [p.id for p in playbooks.playbooks] == ["credential-stuffing", "distributed-bruteforce", "account-takeover"]
    stuffing, distributed, takeover = playbooks.playbooks
    assert stuffing.threshold is not None and stuffing.threshold.count == 20 and stuffing.threshold.within == 600
    assert stuffing.threshold.distinct is not None and stuffing.threshold.distinct.field == "user.email"
    assert stuffing.actions[0].escalate is not None and stuffing.actions[0].escalate.max == 7 * 86400
    assert distributed.mode == "enforce" and distributed.actions[0].target == "contributors"
    assert distributed.actions[0].max_targets == 200
    assert takeover.sequence is not None and [s.count for s in takeover.sequence.steps] == [5, 1]
    assert playbooks.channels["security-slack"].url == ENV["SLACK_WEBHOOK_URL"]
    assert playbooks.channels["soc"].secret == "k3y"
    assert playbooks.channels["oncall"].emails == ("oncall@example.com",)
    assert playbooks.max_active_decisions == 2500
    assert playbooks.longest_window == 1200


def test_missing_environment_is_an_error_unless_lenient() -> None:
    with pytest.raises(PlaybookError) as info:
        loads(ISSUE_EXAMPLE, env={"SOC_HMAC_KEY": "x"}, source="p.yaml")
    assert info.value.line == 6 and info.value.field == "notify.security-slack.slack"
    assert "SLACK_WEBHOOK_URL" in str(info.value) and str(info.value).startswith("p.yaml:6: ")
    lenient = loads(ISSUE_EXAMPLE, env={}, strict_env=False)
    assert lenient.missing_env == ("SLACK_WEBHOOK_URL", "SOC_HMAC_KEY")


def _bad(replace: str, by: str) -> PlaybookError:
    assert replace in ISSUE_EXAMPLE
    with pytest.raises(PlaybookError) as info:
        loads(ISSUE_EXAMPLE.replace(replace, by, 1), env=ENV)
    return info.value


@pytest.mark.parametrize(
    ("replace", "by", "line", "field", "words"),
    [
        ("within: 10m", "within: 10x", 15, "playbooks[0].threshold.within", "30s, 10m"),
        ("within: 10m", "within: 0s", 15, "playbooks[0].threshold.within", "more than 0"),
        ("count: 20, within: 10m", "count: -1, within: 10m", 15, "playbooks[0].threshold.count", "integer"),
        ("success == false\"}", "success ==\"}", 13, "playbooks[0].when.where", "CEL"),
        ("success == false\"}", "success == false && nosuch.x\"}", 13, "playbooks[0].when.where", "nosuch"),
        ("group_by: [client.address]", "group_by: [client.adress]", 14, "playbooks[0].group_by[0]", "client.adress"),
        ("mode: enforce", "mode: enforced", 12, "playbooks[0].mode", "simulate"),
        ("notify: [security-slack]", "notify: [slack2]", 18, "playbooks[0].then[1].notify[0]", "slack2"),
        ("{duration: 1h, escalate", "{duration: 1h, target: all, escalate", 17, "playbooks[0].then[0].block_ip.target",
         "contributors"),
        ("{duration: 1h, escalate", "{durtion: 1h, escalate", 17, "playbooks[0].then[0].block_ip.durtion",
         "unknown key"),
        ("factor: 2", "factor: 0", 17, "playbooks[0].then[0].block_ip.escalate.factor", "factor"),
        ('ips: ["10.0.0.0/8"', 'ips: ["10.0.0.0/88"', 3, "allowlist.ips[0]", "not an IP"),
        ("- id: distributed-bruteforce", "- id: credential-stuffing", 19, "playbooks[1].id", "duplicate"),
        ("block_user: {duration: 24h}", "block_user: {duration: 24h, url: /x}", 36,
         "playbooks[2].then[0].block_user.url", "unknown key"),
        ("version: 1", "version: 2", 1, "version", "version 1"),
        ("      - notify: [oncall]", "      - quarantine: {}", 37, "playbooks[2].then[1].quarantine",
         "unknown response"),
    ],
)  # fmt: skip
def test_errors_name_line_and_field(replace: str, by: str, line: int, field: str, words: str) -> None:
    error = _bad(replace, by)
    assert (error.line, error.field) == (line, field), str(error)
    assert words in error.message


def test_group_actions_need_the_field_in_group_by() -> None:
    error = _bad("group_by: [client.address]", "group_by: [user.email]")
    assert error.field == "playbooks[0].then[0].block_ip" and "client.address" in error.message
    error = _bad("group_by: [user.email]\n    sequence", "group_by: [client.address]\n    sequence")
    assert error.field == "playbooks[2].then[0].block_user" and "user." in error.message


def test_threshold_or_sequence_and_yaml_errors() -> None:
    text = ISSUE_EXAMPLE.replace("    threshold: {count: 20, within: 15m", "    sequence: {within: 1m, steps: [{}]}\n"
                                 "    threshold: {count: 20, within: 15m", 1)  # fmt: skip
    with pytest.raises(PlaybookError, match="exactly one of threshold or sequence") as info:
        loads(text, env=ENV)
    assert info.value.line == 19
    with pytest.raises(PlaybookError, match="not valid YAML") as info:
        loads("version: 1\nplaybooks: [\n  {id: x\n", env=ENV)
    assert info.value.line is not None
    with pytest.raises(PlaybookError, match="duplicate key") as info:
        loads("version: 1\nversion: 1\nplaybooks: []\n")
    assert info.value.line == 2
    with pytest.raises(PlaybookError, match="empty"):
        loads("")
    with pytest.raises(PlaybookError, match="missing required key 'playbooks'"):
        loads("version: 1\n")


def test_load_reads_files_and_reports_unreadable_ones(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(ISSUE_EXAMPLE)
    assert len(load(path, env=ENV).playbooks) == 3
    with pytest.raises(PlaybookError, match="cannot read"):
        load(tmp_path / "nope.yaml")
    path.write_bytes(b"version: 1\nplaybooks: []\n\xff\xfe")
    with pytest.raises(PlaybookError, match="UTF-8"):
        load(path)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("10m", 600), ("1h", 3600), ("7d", 604800), ("1h30m", 5400), (45, 45)]
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "1w", "m", "-5s", "1.5h", True, 0, "400d", None])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_example_file_is_valid() -> None:
    example = Path(__file__).parent.parent / "examples" / "playbooks.yaml"
    playbooks = load(example, strict_env=False)
    assert len(playbooks.playbooks) == 5
    assert all(p.tests for p in playbooks.playbooks) and playbooks.tests


def test_yaml_tags_cannot_build_objects() -> None:
    text = textwrap.dedent("""\
        version: 1
        playbooks:
          - id: !!python/object/apply:os.system ["echo pwned"]
        """)
    with pytest.raises(PlaybookError, match="not valid YAML"):
        loads(text)


def test_alias_bombs_are_refused() -> None:
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    with pytest.raises(PlaybookError, match="more than 200000 YAML values"):
        loads("\n".join([*lines, "playbooks: []"]))
