"""The playbook file: YAML into checked dataclasses, with the line and field of the first problem.

``load(path)`` / ``loads(text)`` return a ``PlaybookSet`` or raise ``PlaybookError`` (``.line``,
``.field`` like ``playbooks[0].threshold.count``, ``.message``): the live explorer keeps its last
good set when a reload fails. Everything is checked at load time (unknown keys, field names, CEL,
durations, notify channel names, actions against ``group_by``) so that evaluation never fails on
the file's account.

Durations: an integer of seconds or ``30s``, ``10m``, ``1h``, ``7d`` (and sums like ``1h30m``).
Notify secrets and URLs may hold ``${NAME}``, replaced from the environment at load time; a missing
variable is an error unless ``strict_env=False`` (then it is left empty and listed in
``PlaybookSet.missing_env``), which ``check``, ``test`` and ``backtest`` use: they send nothing.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from .expr import ExpressionError, Where
from .fields import check_field

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000
MAX_PLAYBOOKS = 200
MAX_GROUP_FIELDS = 4
MAX_COUNT = 1_000_000
MAX_SEQUENCE_EVENTS = 1000  # sum of the steps' counts
MAX_DURATION = 366 * 86400
DEFAULT_MAX_ACTIVE_DECISIONS = 2500
DEFAULT_MAX_KEYS = 100_000
DEFAULT_MAX_TARGETS = 100
DEFAULT_LOOKBACK = 30 * 86400
ACTIONS = ("block_ip", "block_user", "redirect_ip", "redirect_user")
Mode = Literal["enforce", "simulate", "off"]
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SEVERITIES = ("info", "low", "medium", "high", "critical")


class PlaybookError(ValueError):
    """A bad playbook file: ``str()`` is ``FILE:LINE: FIELD: message``."""

    def __init__(self, message: str, *, line: int | None = None, field: str = "", source: str = "") -> None:
        self.message, self.line, self.field, self.source = message, line, field, source
        where = source or "<playbooks>"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")


# -- the dataclasses -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Distinct:
    field: str
    min: int


@dataclass(frozen=True)
class Threshold:
    """``count`` matching events of one group within ``within`` seconds (and ``distinct`` values)."""

    count: int
    within: float
    distinct: Distinct | None = None


@dataclass(frozen=True)
class Step:
    where: Where | None
    count: int = 1
    event: tuple[str, ...] = ()  # names this step's events must have, beyond ``when.event``


@dataclass(frozen=True)
class Sequence:
    """Each step's ``count`` events in order, the whole within ``within`` seconds of its first event."""

    within: float
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Escalate:
    factor: float = 2.0
    max: float | None = None
    lookback: float = DEFAULT_LOOKBACK


@dataclass(frozen=True)
class Action:
    """``block_ip`` / ``block_user`` / ``redirect_ip`` / ``redirect_user``."""

    type: str
    duration: float
    target: Literal["group", "contributors"] = "group"
    max_targets: int = DEFAULT_MAX_TARGETS
    escalate: Escalate | None = None
    url: str | None = None

    @property
    def scope(self) -> Literal["ip", "user"]:
        return "ip" if self.type.endswith("_ip") else "user"


@dataclass(frozen=True)
class Channel:
    """A notification channel: ``slack`` (incoming webhook URL), ``webhook`` (+ HMAC ``secret``) or ``email``."""

    name: str
    kind: Literal["slack", "webhook", "email"]
    url: str | None = None
    secret: str | None = None
    emails: tuple[str, ...] = ()


@dataclass(frozen=True)
class TestCase:
    """One ``tests:`` entry: events (inline or a JSONL file) and what they must produce."""

    name: str
    events: tuple[Mapping[str, Any], ...]
    file: str | None
    expect: Mapping[str, Any]
    line: int | None = None


@dataclass(frozen=True)
class Playbook:
    id: str
    mode: Mode
    events: tuple[str, ...]  # when.event: names that can match (empty: any)
    where: Where | None
    group_by: tuple[str, ...]
    threshold: Threshold | None
    sequence: Sequence | None
    actions: tuple[Action, ...]
    notify: tuple[str, ...]
    description: str = ""
    severity: str = "medium"
    tests: tuple[TestCase, ...] = ()
    line: int | None = None

    @property
    def window(self) -> float:
        """Seconds of history the detection looks at (threshold ``within`` or sequence ``within``)."""
        return self.threshold.within if self.threshold else self.sequence.within if self.sequence else 0.0


@dataclass(frozen=True)
class PlaybookSet:
    version: int
    playbooks: tuple[Playbook, ...]
    allow_ips: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    allow_users: tuple[Mapping[str, str], ...] = ()
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    channels: Mapping[str, Channel] = field(default_factory=dict)
    max_active_decisions: int = DEFAULT_MAX_ACTIVE_DECISIONS
    max_keys: int = DEFAULT_MAX_KEYS
    tests: tuple[TestCase, ...] = ()  # file-level tests: every playbook at once
    source: str = ""
    missing_env: tuple[str, ...] = ()

    def get(self, playbook_id: str) -> Playbook | None:
        return next((p for p in self.playbooks if p.id == playbook_id), None)

    @property
    def longest_window(self) -> float:
        """Seconds of stored events that rebuild the engine's state after a restart."""
        return max((p.window for p in self.playbooks if p.mode != "off"), default=0.0)


# -- durations and environment ---------------------------------------------------------------------


def parse_duration(value: Any, *, allow_zero: bool = False) -> float:
    """Seconds from ``30s``, ``10m``, ``1h``, ``7d``, ``1h30m`` or a whole number of seconds; ``ValueError`` else."""
    if isinstance(value, bool):
        raise ValueError(f"a duration is like 30s, 10m, 1h or 7d, got {value!r}")
    if isinstance(value, int):
        seconds = float(value)
    elif isinstance(value, str) and value and (match := _DURATION.fullmatch(value.strip())) and value.strip():
        d, h, m, s = (int(g) if g else 0 for g in match.groups())
        seconds = float(d * 86400 + h * 3600 + m * 60 + s)
    else:
        raise ValueError(f"a duration is like 30s, 10m, 1h or 7d, got {value!r}")
    if allow_zero and seconds == 0:
        return 0.0
    if not 0 < seconds <= MAX_DURATION:
        raise ValueError(f"a duration must be more than 0 s and at most 366d, got {value!r}")
    return seconds


def substitute_env(text: str, env: Mapping[str, str], missing: list[str]) -> str:
    """``${NAME}`` replaced by ``env["NAME"]``; names not set are appended to ``missing`` and become ""."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            missing.append(name)
            return ""
        return env[name]

    return _ENV_REF.sub(one, text)


# -- YAML with line numbers ------------------------------------------------------------------------


_MAP_TAG, _SEQ_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


class _Node:
    """A YAML value with the line it starts on (1-based) and its field path, for errors."""

    __slots__ = ("line", "path", "value")

    def __init__(self, value: Any, line: int, path: str) -> None:
        self.value, self.line, self.path = value, line, path


def _convert(node: yaml.Node, loader: yaml.SafeLoader, path: str, budget: list[int]) -> _Node:
    """Nodes into ``_Node``s; ``budget`` counts down the nodes visited (aliases can repeat a subtree)."""
    line = node.start_mark.line + 1
    budget[0] -= 1
    if budget[0] < 0:
        raise PlaybookError(f"more than {MAX_NODES} YAML values (aliases repeating a subtree?)", line=line, field=path)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in (_MAP_TAG, _SEQ_TAG):
        raise PlaybookError(f"not valid YAML: tag {node.tag!r} is not allowed", line=line, field=path)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, _Node] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise PlaybookError(f"keys must be text, got {key!r}", line=key_node.start_mark.line + 1, field=path)
            sub = f"{path}.{key}" if path else key
            if key in out:
                raise PlaybookError("duplicate key", line=key_node.start_mark.line + 1, field=sub)
            out[key] = _convert(value_node, loader, sub, budget)
        return _Node(out, line, path)
    if isinstance(node, yaml.SequenceNode):
        return _Node([_convert(n, loader, f"{path}[{i}]", budget) for i, n in enumerate(node.value)], line, path)
    return _Node(loader.construct_object(node, deep=True), line, path)


def _plain(node: _Node) -> Any:
    if isinstance(node.value, dict):
        return {k: _plain(v) for k, v in node.value.items()}
    if isinstance(node.value, list):
        return [_plain(v) for v in node.value]
    return node.value


class _Reader:
    """Checks one file, raising ``PlaybookError`` at the node where a problem is."""

    def __init__(self, source: str, env: Mapping[str, str], strict_env: bool, base_dir: str) -> None:
        self.source, self.env, self.strict_env, self.base_dir = source, env, strict_env, base_dir
        self.missing: list[str] = []
        self.compiled: dict[str, Where] = {}

    def fail(self, node: _Node, message: str, sub: str | None = None) -> PlaybookError:
        name = node.path if sub is None else (f"{node.path}.{sub}" if node.path else sub)
        return PlaybookError(message, line=node.line, field=name, source=self.source)

    def mapping(self, node: _Node, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, _Node]:
        if not isinstance(node.value, dict):
            raise self.fail(node, f"expected a mapping with {', '.join(allowed)}")
        for key, value in node.value.items():
            if key not in allowed:
                raise self.fail(value, f"unknown key (expected one of: {', '.join(allowed)})")
        for key in required:
            if key not in node.value:
                raise self.fail(node, f"missing required key {key!r}")
        return node.value

    def text(self, node: _Node, limit: int = 1024) -> str:
        if not isinstance(node.value, str) or not node.value:
            raise self.fail(node, "expected non-empty text")
        if len(node.value) > limit:
            raise self.fail(node, f"limited to {limit} characters")
        return node.value

    def integer(self, node: _Node, low: int, high: int) -> int:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(node, f"expected an integer from {low} to {high}, got {value!r}")
        return value

    def duration(self, node: _Node) -> float:
        try:
            return parse_duration(node.value)
        except ValueError as exc:
            raise self.fail(node, str(exc)) from None

    def names(self, node: _Node) -> tuple[str, ...]:
        items = node.value if isinstance(node.value, list) else [node]
        if not items:
            raise self.fail(node, "expected at least one name")
        return tuple(self.text(item, 256) for item in items)

    def field_name(self, node: _Node) -> str:
        try:
            return check_field(node.value)
        except ValueError as exc:
            raise self.fail(node, str(exc)) from None

    def where(self, node: _Node | None) -> Where | None:
        if node is None or node.value is None:
            return None
        if not isinstance(node.value, str):
            raise self.fail(node, "expected a CEL expression as text")
        known = self.compiled.get(node.value)
        if known is not None:  # one Where per text: playbooks sharing a condition share its cache
            return known
        try:
            self.compiled[node.value] = Where(node.value)
            return self.compiled[node.value]
        except ExpressionError as exc:
            raise self.fail(node, str(exc)) from None

    def env_text(self, node: _Node) -> str:
        missing: list[str] = []
        value = substitute_env(self.text(node, 4096), self.env, missing)
        if missing and self.strict_env:
            raise self.fail(node, f"environment variable(s) not set: {', '.join(missing)}")
        self.missing += missing
        return value

    # -- sections ----------------------------------------------------------------------------------

    def read(self, root: _Node) -> PlaybookSet:
        top = self.mapping(
            root,
            ("version", "allowlist", "trusted_proxies", "notify", "max_active_decisions", "max_keys", "playbooks",
             "tests"),
            ("version", "playbooks"),
        )  # fmt: skip
        if top["version"].value != 1:
            raise self.fail(top["version"], f"only version 1 is known, got {top['version'].value!r}")
        allow_ips: tuple[Any, ...] = ()
        allow_users: tuple[Mapping[str, str], ...] = ()
        if "allowlist" in top and top["allowlist"].value is not None:
            allow = self.mapping(top["allowlist"], ("ips", "users"))
            allow_ips = self.networks(allow.get("ips"))
            allow_users = self.users(allow.get("users"))
        proxies = self.networks(top.get("trusted_proxies"))
        channels = self.channels(top.get("notify"))
        limits = {}
        for key, default in (("max_active_decisions", DEFAULT_MAX_ACTIVE_DECISIONS), ("max_keys", DEFAULT_MAX_KEYS)):
            limits[key] = self.integer(top[key], 1, 10_000_000) if key in top else default
        books = top["playbooks"]
        if not isinstance(books.value, list):
            raise self.fail(books, "expected a list of playbooks")
        if len(books.value) > MAX_PLAYBOOKS:
            raise self.fail(books, f"at most {MAX_PLAYBOOKS} playbooks")
        playbooks: list[Playbook] = []
        for node in books.value:
            playbook = self.playbook(node, channels)
            if any(p.id == playbook.id for p in playbooks):
                raise self.fail(node.value["id"], f"duplicate playbook id {playbook.id!r}")
            playbooks.append(playbook)
        return PlaybookSet(
            version=1,
            playbooks=tuple(playbooks),
            allow_ips=allow_ips,
            allow_users=allow_users,
            trusted_proxies=proxies,
            channels=channels,
            max_active_decisions=limits["max_active_decisions"],
            max_keys=limits["max_keys"],
            tests=self.tests(top.get("tests")),
            source=self.source,
            missing_env=tuple(dict.fromkeys(self.missing)),
        )

    def networks(self, node: _Node | None) -> tuple[Any, ...]:
        if node is None or node.value is None:
            return ()
        if not isinstance(node.value, list):
            raise self.fail(node, "expected a list of addresses or CIDR networks")
        out = []
        for item in node.value:
            try:
                out.append(ipaddress.ip_network(str(self.text(item, 64)), strict=False))
            except ValueError:
                raise self.fail(item, f"not an IP address or network: {item.value!r}") from None
        return tuple(out)

    def users(self, node: _Node | None) -> tuple[Mapping[str, str], ...]:
        if node is None or node.value is None:
            return ()
        if not isinstance(node.value, list):
            raise self.fail(node, "expected a list of user identifiers like {email: ops@example.com}")
        out = []
        for item in node.value:
            if not isinstance(item.value, dict) or not item.value:
                raise self.fail(item, "expected user identifiers like {email: ops@example.com}")
            out.append({key: str(value.value) for key, value in item.value.items()})
        return tuple(out)

    def channels(self, node: _Node | None) -> dict[str, Channel]:
        if node is None or node.value is None:
            return {}
        out: dict[str, Channel] = {}
        for name, item in self.mapping(node, tuple(node.value) if isinstance(node.value, dict) else ()).items():
            if not _ID.fullmatch(name):
                raise self.fail(item, "a channel name holds letters, digits, '_', '.' and '-' (64 at most)")
            spec = self.mapping(item, ("slack", "webhook", "secret", "email"))
            kinds = [k for k in ("slack", "webhook", "email") if k in spec]
            if len(kinds) != 1:
                raise self.fail(item, "a channel is one of slack: URL, webhook: URL (with secret), email: [addresses]")
            kind = kinds[0]
            if "secret" in spec and kind != "webhook":
                raise self.fail(spec["secret"], "only a webhook channel takes a secret")
            if kind == "email":
                emails = self.names(spec["email"])
                for address in emails:
                    if "@" not in address or any(c.isspace() for c in address):
                        raise self.fail(spec["email"], f"not an email address: {address!r}")
                out[name] = Channel(name, "email", emails=emails)
                continue
            url = self.env_text(spec[kind])
            if not url and self.strict_env:
                raise self.fail(spec[kind], "the URL is empty")
            if url and not re.match(r"https?://[^\s/]+", url):
                raise self.fail(spec[kind], "expected an http:// or https:// URL")
            secret = self.env_text(spec["secret"]) if "secret" in spec else None
            out[name] = Channel(name, kind, url=url, secret=secret)  # type: ignore[arg-type]
        return out

    def playbook(self, node: _Node, channels: Mapping[str, Channel]) -> Playbook:
        spec = self.mapping(
            node,
            ("id", "description", "mode", "severity", "when", "group_by", "threshold", "sequence", "then", "tests"),
            ("id", "when", "group_by", "then"),
        )
        playbook_id = self.text(spec["id"], 64)
        if not _ID.fullmatch(playbook_id):
            raise self.fail(spec["id"], "an id holds letters, digits, '_', '.' and '-' (64 at most)")
        mode = spec["mode"].value if "mode" in spec else "enforce"
        if mode is False:  # YAML 1.1 reads a bare `off` as false
            mode = "off"
        if mode not in ("enforce", "simulate", "off"):
            raise self.fail(spec["mode"], f"mode is enforce, simulate or off, got {mode!r}")
        severity = spec["severity"].value if "severity" in spec else "medium"
        if severity not in _SEVERITIES:
            raise self.fail(spec["severity"], f"severity is one of {', '.join(_SEVERITIES)}")
        when = self.mapping(spec["when"], ("event", "where"))
        events = self.names(when["event"]) if "event" in when else ()
        group_node = spec["group_by"]
        group_items = group_node.value if isinstance(group_node.value, list) else [group_node]
        if not 1 <= len(group_items) <= MAX_GROUP_FIELDS:
            raise self.fail(group_node, f"group_by takes 1 to {MAX_GROUP_FIELDS} fields")
        group_by = tuple(self.field_name(item) for item in group_items)
        if ("threshold" in spec) == ("sequence" in spec):
            raise self.fail(node, "a playbook has exactly one of threshold or sequence")
        threshold = self.threshold(spec["threshold"]) if "threshold" in spec else None
        sequence = self.sequence(spec["sequence"]) if "sequence" in spec else None
        actions, notify = self.then(spec["then"], channels, group_by)
        description = self.text(spec["description"], 4096) if "description" in spec else ""
        return Playbook(
            id=playbook_id,
            mode=mode,  # type: ignore[arg-type]  # checked above
            events=events,
            where=self.where(when.get("where")),
            group_by=group_by,
            threshold=threshold,
            sequence=sequence,
            actions=actions,
            notify=notify,
            description=description,
            severity=severity,
            tests=self.tests(spec.get("tests")),
            line=node.line,
        )

    def threshold(self, node: _Node) -> Threshold:
        spec = self.mapping(node, ("count", "within", "distinct"), ("count", "within"))
        distinct = None
        if "distinct" in spec:
            d = self.mapping(spec["distinct"], ("field", "min"), ("field", "min"))
            distinct = Distinct(self.field_name(d["field"]), self.integer(d["min"], 1, MAX_COUNT))
        return Threshold(self.integer(spec["count"], 1, MAX_COUNT), self.duration(spec["within"]), distinct)

    def sequence(self, node: _Node) -> Sequence:
        spec = self.mapping(node, ("within", "steps"), ("within", "steps"))
        steps_node = spec["steps"]
        if not isinstance(steps_node.value, list) or not 1 <= len(steps_node.value) <= 20:
            raise self.fail(steps_node, "expected a list of 1 to 20 steps")
        steps = []
        for item in steps_node.value:
            step = self.mapping(item, ("where", "count", "event"))
            count = self.integer(step["count"], 1, MAX_SEQUENCE_EVENTS) if "count" in step else 1
            event = self.names(step["event"]) if "event" in step else ()
            steps.append(Step(self.where(step.get("where")), count, event))
        if sum(s.count for s in steps) > MAX_SEQUENCE_EVENTS:
            raise self.fail(steps_node, f"the steps' counts add up to at most {MAX_SEQUENCE_EVENTS}")
        return Sequence(self.duration(spec["within"]), tuple(steps))

    def then(
        self, node: _Node, channels: Mapping[str, Channel], group_by: tuple[str, ...]
    ) -> tuple[tuple[Action, ...], tuple[str, ...]]:
        if not isinstance(node.value, list) or not node.value:
            raise self.fail(node, "expected a list of responses (block_ip, block_user, redirect_ip, redirect_user, "
                                  "notify)")  # fmt: skip
        actions: list[Action] = []
        notify: list[str] = []
        for item in node.value:
            if not isinstance(item.value, dict) or len(item.value) != 1:
                raise self.fail(item, "each response is one of block_ip, block_user, redirect_ip, redirect_user, "
                                      "notify")  # fmt: skip
            ((kind, body),) = item.value.items()
            if kind == "notify":
                for name_node in body.value if isinstance(body.value, list) else [body]:
                    name = self.text(name_node, 64)
                    if name not in channels:
                        known = ", ".join(channels) or "none defined"
                        raise self.fail(name_node, f"unknown notify channel {name!r} (known: {known})")
                    notify.append(name)
                continue
            if kind not in ACTIONS:
                raise self.fail(body, "unknown response (expected block_ip, block_user, redirect_ip, redirect_user, "
                                      "notify)")  # fmt: skip
            actions.append(self.action(kind, body, group_by))
        return tuple(actions), tuple(dict.fromkeys(notify))

    def action(self, kind: str, node: _Node, group_by: tuple[str, ...]) -> Action:
        redirect = kind.startswith("redirect")
        allowed = ("duration", "target", "max_targets", "escalate") + (("url",) if redirect else ())
        spec = self.mapping(node, allowed, ("duration", "url") if redirect else ("duration",))
        target = spec["target"].value if "target" in spec else "group"
        if target not in ("group", "contributors"):
            raise self.fail(spec["target"], f"target is group or contributors, got {target!r}")
        if target == "group":
            if kind.endswith("_ip") and "client.address" not in group_by:
                raise self.fail(node, f"{kind} of the group needs client.address in group_by (or target: contributors)")
            if kind.endswith("_user") and not any(f.startswith("user.") for f in group_by):
                raise self.fail(node, f"{kind} of the group needs a user.<key> in group_by (or target: contributors)")
        escalate = None
        if "escalate" in spec:
            e = self.mapping(spec["escalate"], ("factor", "max", "lookback"))
            factor = e["factor"].value if "factor" in e else 2.0
            if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 1 <= factor <= 100:
                raise self.fail(e["factor"], f"factor is a number from 1 to 100, got {factor!r}")
            escalate = Escalate(
                float(factor),
                self.duration(e["max"]) if "max" in e else None,
                self.duration(e["lookback"]) if "lookback" in e else DEFAULT_LOOKBACK,
            )
        url = None
        if redirect:
            url = self.text(spec["url"], 2048)
            if not re.match(r"(https?://[^\s]+|/[^\s]*)$", url):
                raise self.fail(spec["url"], "expected an http(s):// URL or a path starting with /")
        max_targets = self.integer(spec["max_targets"], 1, 100_000) if "max_targets" in spec else DEFAULT_MAX_TARGETS
        duration = self.duration(spec["duration"])
        return Action(kind, duration, target, max_targets, escalate, url)  # type: ignore[arg-type]  # checked above

    def tests(self, node: _Node | None) -> tuple[TestCase, ...]:
        if node is None or node.value is None:
            return ()
        if not isinstance(node.value, list):
            raise self.fail(node, "expected a list of tests")
        out = []
        for i, item in enumerate(node.value):
            spec = self.mapping(item, ("name", "events", "file", "expect"), ("expect",))
            if ("events" in spec) == ("file" in spec):
                raise self.fail(item, "a test has events (inline) or file (JSON Lines), not both")
            events: tuple[Mapping[str, Any], ...] = ()
            if "events" in spec:
                if not isinstance(spec["events"].value, list):
                    raise self.fail(spec["events"], "expected a list of events")
                for event in spec["events"].value:
                    if not isinstance(event.value, dict):
                        raise self.fail(event, "an event is a mapping (name, at, properties, user, ip, ...)")
                events = tuple(_plain(e) for e in spec["events"].value)
            file = None
            if "file" in spec:
                file = os.path.join(self.base_dir, self.text(spec["file"]))
            expect = self.mapping(spec["expect"], ("alerts", "decisions", "notifications"))
            name = self.text(spec["name"], 256) if "name" in spec else f"test {i + 1}"
            out.append(TestCase(name, events, file, {k: _plain(v) for k, v in expect.items()}, item.line))
        return tuple(out)


def loads(
    text: str | bytes, *, source: str = "", env: Mapping[str, str] | None = None, strict_env: bool = True,
    base_dir: str = ".",
) -> PlaybookSet:  # fmt: skip
    """Parse and check a playbook file's text; ``PlaybookError`` (with line and field) when it is wrong."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > MAX_FILE_BYTES:
        raise PlaybookError(f"the file is over {MAX_FILE_BYTES} bytes", source=source)
    try:
        loader = yaml.SafeLoader(raw.decode("utf-8"))
        try:
            root = loader.get_single_node()
            if root is None:
                raise PlaybookError("the file is empty (expected version: 1 and playbooks:)", line=1, source=source)
            tree = _convert(root, loader, "", [MAX_NODES])
        finally:
            loader.dispose()
    except UnicodeDecodeError as exc:
        raise PlaybookError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", source=source) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise PlaybookError(f"not valid YAML: {exc.problem or exc.context}", line=line, source=source) from None
    except PlaybookError as exc:
        raise PlaybookError(exc.message, line=exc.line, field=exc.field, source=source) from None
    except yaml.YAMLError as exc:
        raise PlaybookError(f"not valid YAML: {exc}", source=source) from None
    reader = _Reader(source, os.environ if env is None else env, strict_env, base_dir)
    return reader.read(tree)


def load(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None, strict_env: bool = True) -> PlaybookSet:
    """Read and check a playbook file; ``PlaybookError`` (``.line``, ``.field``) when it is wrong or unreadable."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise PlaybookError(f"cannot read the file: {exc.strerror or exc}", source=name) from None
    base = os.path.dirname(os.path.abspath(name))
    return loads(raw, source=name, env=env, strict_env=strict_env, base_dir=base)
