"""``sqreen-otel``: run the Event Explorer and work with it from a terminal.

    sqreen-otel serve [--db events.sqlite] [--host 127.0.0.1] [--port 4318] [--token T]
    sqreen-otel import FILE            past events (JSON Lines, CSV or OTLP JSON) through the normal pipeline
    sqreen-otel export [--since 7d]    stored events as JSON Lines that import reads back
    sqreen-otel tail                   follow events arriving at a running explorer
    sqreen-otel block-user / block-ip / unblock-user / unblock-ip / actions
    sqreen-otel playbooks check|test|backtest FILE   validate, unit-test, replay history (see README)

Client commands find the explorer with ``--url`` (default ``http://127.0.0.1:4318``) and ``--token``,
or the environment variables ``SQREEN_OTEL_EXPLORER_URL`` and ``SQREEN_OTEL_EXPLORER_TOKEN``:

    sqreen-otel tail --url http://explorer.internal:4318 --token T --name sq.sdk.users.login
    SQREEN_OTEL_EXPLORER_URL=http://explorer.internal:4318 sqreen-otel actions

Exit status: 0 done; 1 the explorer could not be reached or refused the request (its message is
shown), or an unblocked user or address is still blocked by another entry; 2 bad arguments. ``serve``:
1 the database could not be opened, 2 also a missing extra or ``--host`` beyond loopback without a
token, 3 cannot listen (port in use). ``import``: 0 every line sent, 1 some lines rejected (see
``FILE.rejected``), 2 the export did not complete or the file could not be read. Each command's
``--help`` lists its own.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import ipaddress
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from .explorer.client import TAIL_PAGE, TOKEN_ENV, ExplorerClient, ExplorerError, blocks_ip, blocks_user

DEFAULT_DB = "events.sqlite"
DEFAULT_PORT = 4318
EXIT_CANNOT_LISTEN = 3  # serve: the address is in use, not available or not permitted (as uvicorn's start-up failure)

Command = Callable[[argparse.Namespace], int]
_commands: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(func: Command) -> Command:
        _commands[name] = func
        return func

    return register


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@command("serve")
def serve(args: argparse.Namespace) -> int:
    if not is_loopback(args.host) and not args.token:
        print(f"refusing to listen on {args.host} without --token: anyone on the network could read events",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        import uvicorn

        from .explorer import server as explorer_server
        from .explorer.app import create_app
        from .explorer.storage import is_postgres, open_store, storage_errors
    except ImportError as exc:
        print(f"the explorer needs its extra: pip install 'sqreen_otel[explorer]' ({exc})", file=sys.stderr)
        return 2
    try:
        sock = listen(args.host, args.port)
    except OSError as exc:
        print(f"sqreen-otel serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    max_age = args.max_age_days * 86400 if args.max_age_days else None
    _log_to_stderr()
    try:
        store = open_store(args.db, max_age=max_age, max_rows=args.max_rows or None)
    except storage_errors(args.db) as exc:
        sock.close()
        print(f"sqreen-otel serve: cannot open the database {args.db}: {exc}", file=sys.stderr)
        return 1
    try:
        store.check_writable()  # acknowledged events must be stored: refuse a read-only file or a full disk
    except storage_errors(args.db) as exc:
        sock.close()
        store.close()
        print(f"sqreen-otel serve: cannot write to the database {args.db}: {exc}", file=sys.stderr)
        return 1
    live = None
    if args.playbooks:
        live = _start_playbooks(args.playbooks, store)
        if live is None:
            sock.close()
            store.close()
            return 2
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    print(f"Event Explorer on {url}/  (OTLP logs: {url}/v1/logs, actions: {url}/v1/actions)", flush=True)
    if live is not None and live.playbooks is not None:
        modes = ", ".join(f"{p.id} ({p.mode})" for p in live.playbooks.playbooks)
        print(f"Playbooks from {args.playbooks}: {modes or 'none'}; reloaded when the file changes", flush=True)
        if is_postgres(args.db):
            print("Playbooks are evaluated by one replica of this database at a time (the leader)", flush=True)
    server = uvicorn.Server(explorer_server.config(create_app(store, token=args.token, live=live)))
    # uvicorn stops on SIGINT and SIGTERM, then raises the signal again for the previous handler: make that
    # handler a clean stop for SIGTERM too (status 0, the database closed), as Ctrl-C is.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        explorer_server.run(server, sock)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        if live is not None:
            live.close()
        store.close()
    return 0 if server.started else EXIT_CANNOT_LISTEN


def _start_playbooks(path: str, store: Any) -> Any:
    """Live evaluation of ``path`` (``serve --playbooks``); ``None`` after printing why it cannot start."""
    from .explorer.live import Live
    from .explorer.notify import SMTPConfig
    from .explorer.playbooks import PlaybookError

    proxies = [p.strip() for p in os.environ.get("SQREEN_OTEL_TRUSTED_PROXIES", "").split(",") if p.strip()]
    try:
        smtp = SMTPConfig.from_environment()
        live = Live(store, path, trusted_proxies=proxies, smtp=smtp).start()
    except PlaybookError as exc:
        print(f"sqreen-otel serve: {exc}", file=sys.stderr)
        return None
    except ValueError as exc:
        print(f"sqreen-otel serve: {exc}", file=sys.stderr)
        return None
    return live


def _log_to_stderr() -> None:
    """The explorer's own messages (storage failures, limits hit) on stderr, with time and level."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    explorer_logger = logging.getLogger("sqreen_otel.explorer")
    explorer_logger.addHandler(handler)
    explorer_logger.setLevel(logging.INFO)
    explorer_logger.propagate = False


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, bound before anything is printed: a busy port is an error, never a banner then one.

    Like uvicorn's own: ``SO_REUSEADDR`` (a restart does not wait for TIME_WAIT; two servers still cannot
    share a port), the first address ``host`` resolves to.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]  # fmt: skip
    sock = socket.socket(family, kind, proto)
    try:
        if os.name != "nt":  # on Windows SO_REUSEADDR lets a second server steal the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


@command("playbooks")
def playbooks(args: argparse.Namespace) -> int:
    from .explorer.playbooks.commands import run

    return run(args)


@command("import")
def import_(args: argparse.Namespace) -> int:
    from .importer import ImportFailed, import_file

    try:
        token = args.token or os.environ.get(TOKEN_ENV) or None
        return import_file(args.file, endpoint=args.endpoint, fmt=args.format, token=token).exit_code
    except ImportFailed as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the import did not complete", file=sys.stderr)
        return 2


# -- explorer clients ------------------------------------------------------------------------------


@command("export")
def export(args: argparse.Namespace) -> int:
    from .export_events import Selection, export_events, parse_moment

    try:
        selection = Selection(
            name=args.name, user=args.user, ip=args.ip, prop=args.prop,
            since_ns=None if args.since is None else parse_moment(args.since),
            until_ns=None if args.until is None else parse_moment(args.until),
        )  # fmt: skip
    except ValueError as exc:
        print(f"sqreen-otel export: {exc}", file=sys.stderr)
        return 2
    client = _client(args)
    try:
        written = export_events(client, sys.stdout.buffer, selection)
        sys.stdout.flush()
    except ExplorerError as exc:
        print(f"sqreen-otel export: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader stopped (| head): nothing more to say, and no traceback at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        client.close()
    print(f"exported {written:,} event(s) from {client.url}", file=sys.stderr)
    return 0


def _client(args: argparse.Namespace) -> ExplorerClient:
    return ExplorerClient(args.url, args.token)


def _client_command(func: Callable[[argparse.Namespace, ExplorerClient], int]) -> Command:
    """Runs ``func`` with a client; an ``ExplorerError`` becomes its message on stderr and status 1."""

    def run(args: argparse.Namespace) -> int:
        client = _client(args)
        try:
            return func(args, client)
        except ExplorerError as exc:
            print(f"sqreen-otel {args.command}: {exc}", file=sys.stderr)
            return 1
        finally:
            client.close()

    return run


def _when(ns: int) -> str:
    moment = _dt.datetime.fromtimestamp(ns // 10**9, _dt.timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ns // 10**6 % 1000:03d}Z"


def _show(value: Any) -> str:
    """A value for one terminal line: plain when safe, else JSON with every control character escaped.

    Events come from anyone who can reach an application: escape sequences must never reach the terminal.
    """
    if isinstance(value, str):
        if value and value.isprintable() and not any(c.isspace() or c in '"=' for c in value):
            return value
        return json.dumps(value, ensure_ascii=not value.isprintable())
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, default=str)


def format_event(event: dict[str, Any]) -> str:
    """One line: time, name, user, client address, method and path, properties."""
    parts = [_when(int(event.get("time_ns") or 0)), _show(event.get("name") or "-")]
    user = event.get("user") or {}
    if user:
        parts.append("user=" + ",".join(f"{_show(k)}:{_show(v)}" for k, v in user.items()))
    if event.get("client_address"):
        parts.append(f"ip={_show(event['client_address'])}")
    if event.get("path"):
        method = f"{_show(event['method'])} " if event.get("method") else ""
        parts.append(method + _show(event["path"]))
    prefix = "sqreen.properties."
    for key, value in (event.get("attributes") or {}).items():
        if key.startswith(prefix):
            parts.append(f"{_show(key[len(prefix) :])}={_show(value)}")
    return "  ".join(parts)


@command("tail")
@_client_command
def tail(args: argparse.Namespace, client: ExplorerClient) -> int:
    filters = {"name": args.name, "user": args.user, "ip": args.ip}
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        after = 0 if args.from_start else client.newest_id()
        events = client.tail(after, **filters)  # the first contact: failing here is an error, not a wait
        print(f"following events at {client.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        lost: str | None = None
        while True:
            for event in events:
                print(format_event(event))
                after = max(after, int(event["id"]))
            sys.stdout.flush()
            if len(events) < TAIL_PAGE:  # caught up: wait; a full page means more are waiting
                time.sleep(args.interval)
            try:
                events = client.tail(after, **filters)
            except ExplorerError as exc:
                if exc.status is not None and exc.status < 500:  # refused: retrying will not help
                    raise
                if lost is None:
                    print(f"lost the explorer: {exc}; retrying every {args.interval:g} s", file=sys.stderr, flush=True)
                lost, events = str(exc), []
                continue
            if lost is not None:
                print("explorer back", file=sys.stderr, flush=True)
                lost = None
    except KeyboardInterrupt:
        return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _identifiers(raw: list[str]) -> dict[str, str]:
    identifiers: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value:
            raise argparse.ArgumentTypeError(f"--id must be KEY=VALUE, got {item!r}")
        identifiers[key.strip()] = value
    return identifiers


def _target(identifiers: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in identifiers.items())


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "until unblocked"
    until = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(seconds=seconds)
    return f"for {seconds:g} s (until {until:%Y-%m-%dT%H:%M:%SZ})"


@command("block-user")
@_client_command
def block_user(args: argparse.Namespace, client: ExplorerClient) -> int:
    identifiers = _identifiers(args.id)
    action_id = client.block_user(identifiers, args.duration)
    print(f"blocked user {_target(identifiers)} {_duration(args.duration)} (action {action_id})")
    return 0


@command("block-ip")
@_client_command
def block_ip(args: argparse.Namespace, client: ExplorerClient) -> int:
    action_id = client.block_ip(args.address, args.duration)
    print(f"blocked {args.address} {_duration(args.duration)} (action {action_id})")
    return 0


@command("unblock-user")
@_client_command
def unblock_user(args: argparse.Namespace, client: ExplorerClient) -> int:
    identifiers = _identifiers(args.id)
    exact = [a for a in _manual(client) if a.get("action") == "block_user" and a.get("user") == identifiers]
    lifted = client.unblock_user(identifiers)
    still = [a for a in client.actions() if blocks_user(a, identifiers)]
    return _unblocked(f"user {_target(identifiers)}", len(exact), still, lifted)


@command("unblock-ip")
@_client_command
def unblock_ip(args: argparse.Namespace, client: ExplorerClient) -> int:
    try:
        network = ipaddress.ip_network(args.address, strict=False)
    except ValueError:
        print(f"sqreen-otel unblock-ip: {args.address!r} is not an IP address or network", file=sys.stderr)
        return 2
    exact = [a for a in _manual(client) if a.get("action") == "block_ip" and _same_network(a.get("ip"), network)]
    lifted = client.unblock_ip(args.address)
    still = [a for a in client.actions() if blocks_ip(a, args.address)]
    return _unblocked(args.address, len(exact), still, lifted)


def _manual(client: ExplorerClient) -> list[dict[str, Any]]:
    """The hand-made entries of the block list (playbook decisions carry their ``playbook``)."""
    return [a for a in client.actions() if a.get("playbook") is None]


def _same_network(raw: Any, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_network(str(raw), strict=False) == network
    except ValueError:
        return False


def _unblocked(what: str, removed: int, still: list[dict[str, Any]], lifted: list[str]) -> int:
    done = [f"{removed} block(s) removed"] if removed else []
    done += [f"{len(lifted)} playbook decision(s) lifted: {', '.join(lifted)}"] if lifted else []
    print(f"unblocked {what} ({'; '.join(done)})" if done else f"{what} had no block of its own")
    if not still:
        return 0
    for action in still:
        print(f"  still blocked by action {action['id']} ({_source(action)}): {_describe(action)}", file=sys.stderr)
    print(f"{what} is still blocked: remove those with sqreen-otel unblock-user/unblock-ip", file=sys.stderr)
    return 1


def _describe(action: dict[str, Any]) -> str:
    target = _target(action["user"]) if action.get("action") == "block_user" else str(action.get("ip"))
    expires = action.get("expires_at")
    until = (
        "never" if expires is None else f"{_dt.datetime.fromtimestamp(expires, _dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
    )
    return f"{action.get('action')} {target} (expires {until})"


def _source(action: dict[str, Any]) -> str:
    """Who made an entry: ``manual``, or the id of the playbook that decided it."""
    return str(action.get("playbook") or "manual")


@command("actions")
@_client_command
def actions(args: argparse.Namespace, client: ExplorerClient) -> int:
    entries = client.actions()
    if args.json:
        print(json.dumps(entries, indent=2))
    elif not entries:
        print("no block actions")
    width = max((len(_source(a)) for a in entries), default=0)
    for action in [] if args.json else entries:
        print(f"{action['id']}  {_source(action):<{width}}  {_describe(action)}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sqreen-otel", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    p = _subcommand(sub, "serve", "run the Event Explorer (OTLP receiver, UI, actions feed)")
    p.add_argument("--db", default=DEFAULT_DB,
                   help=f"SQLite file or postgresql://user@host/dbname (default: {DEFAULT_DB})")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    p.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"port, 0 for any free one (default: {DEFAULT_PORT})"
    )
    p.add_argument("--token", help="required on every request; mandatory when binding beyond loopback")
    p.add_argument("--max-age-days", type=float, default=30.0, help="drop events received longer ago (default 30)")
    p.add_argument("--max-rows", type=int, default=5_000_000, help="keep at most this many events (default 5M)")
    p.add_argument("--playbooks", metavar="FILE", help="run this playbook file on each event (reloaded on change)")

    p = _subcommand(sub, "import", "send past events from a JSON Lines, CSV or OTLP JSON file through the pipeline")
    p.add_argument("file", help=".jsonl / .ndjson / .json (JSON Lines, or OTLP JSON by its content) or .csv")
    p.add_argument("--endpoint", help="OTLP logs URL (default: SQREEN_OTEL_ENDPOINT, else the explorer at "
                                      "http://127.0.0.1:4318/v1/logs)")  # fmt: skip
    p.add_argument("--format", choices=("jsonl", "csv", "otlp"), help="default: from the file's extension and content")
    p.add_argument("--token", help="sent as Authorization: Bearer (default: SQREEN_OTEL_EXPLORER_TOKEN)")

    def client_parser(name: str, help: str) -> argparse.ArgumentParser:
        p = _subcommand(sub, name, help)
        p.add_argument("--url", help="the explorer (default: SQREEN_OTEL_EXPLORER_URL, else http://127.0.0.1:4318)")
        p.add_argument("--token", help="the explorer's token (default: SQREEN_OTEL_EXPLORER_TOKEN)")
        return p

    p = client_parser("export", "write the explorer's events to stdout as JSON Lines that import reads back")
    p.add_argument("--since", metavar="WHEN", help="events from then on: 7d, 24h, 30m, ISO 8601 or epoch seconds")
    p.add_argument("--until", metavar="WHEN", help="events before then (same forms)")
    p.add_argument("--name", help="only events of this name")
    p.add_argument("--user", help="only events of a user with this identifier value")
    p.add_argument("--ip", help="only events from this client address")
    p.add_argument("--prop", metavar="KEY=VALUE", help="only events with this property value")

    p = client_parser("tail", "print events as they arrive at the explorer, until Ctrl-C")
    p.add_argument("--name", help="only events of this name")
    p.add_argument("--user", help="only events of a user with this identifier value")
    p.add_argument("--ip", help="only events from this client address")
    p.add_argument("--interval", type=_positive, default=1.0, help="seconds between polls (default 1)")
    p.add_argument("--from-start", action="store_true", help="print the stored events first, oldest first")

    p = client_parser("block-user", "block a user in every app polling the explorer's /v1/actions")
    p.add_argument("--id", action="append", required=True, metavar="KEY=VALUE",
                   help="an identifier (repeatable): the user is blocked when all of them match")  # fmt: skip
    p.add_argument("--duration", type=_positive, metavar="SECONDS", help="default: until unblocked")
    p = client_parser("block-ip", "block a client address or network")
    p.add_argument("address", metavar="ADDRESS_OR_CIDR")
    p.add_argument("--duration", type=_positive, metavar="SECONDS", help="default: until unblocked")
    p = client_parser("unblock-user", "remove the block of exactly these identifiers and lift the playbook "
                                      "decisions in force on them")  # fmt: skip
    p.add_argument("--id", action="append", required=True, metavar="KEY=VALUE")
    p = client_parser("unblock-ip", "remove the block of exactly this address or network and lift the playbook "
                                    "decisions in force on it")  # fmt: skip
    p.add_argument("address", metavar="ADDRESS_OR_CIDR")
    p = client_parser("actions", "list what agents enforce: hand-made blocks and playbook decisions in force "
                                 "(source: manual or the playbook id)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="as JSON")

    from .explorer.playbooks.commands import add_parser as add_playbooks_parser

    add_playbooks_parser(sub, DEFAULT_DB)
    sub.choices["playbooks"].epilog = epilog("playbooks")  # its examples and exit status, as every command's
    sub.choices["playbooks"].formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


# Shown at the end of each command's --help (and in the README): how to point it at an explorer, and
# what its exit status means. A command without an entry gets the client commands' status.
_CLIENT_STATUS = ((0, "done"), (1, "the explorer could not be reached or refused the request (its message is shown)"),
                  (2, "bad arguments"))  # fmt: skip
_URL_EXAMPLES = (
    "--url http://explorer.internal:4318 --token T",
    "SQREEN_OTEL_EXPLORER_URL=http://explorer.internal:4318",
)
HELP: dict[str, tuple[tuple[str, ...], tuple[tuple[int, str], ...]]] = {
    "serve": (
        ("sqreen-otel serve", "sqreen-otel serve --db /var/lib/sqreen-otel/events.sqlite --port 4318",
         "sqreen-otel serve --host 0.0.0.0 --token \"$(openssl rand -hex 16)\""),
        ((0, "stopped by Ctrl-C or SIGTERM"), (1, "the database could not be opened"),
         (2, "bad arguments, the explorer extra is missing, or --host beyond loopback without --token"),
         (EXIT_CANNOT_LISTEN, "cannot listen: the port is in use, the address is not available or not permitted "
                              "(nothing is printed on stdout)")),
    ),
    "import": (
        ("sqreen-otel import past.jsonl", "sqreen-otel import otlp-logs.json --endpoint http://explorer.internal:4318/v1/logs",
         "SQREEN_OTEL_ENDPOINT=http://explorer.internal:4318/v1/logs sqreen-otel import past.csv"),
        ((0, "every line was sent"), (1, "some lines were rejected (each reported, and copied to FILE.rejected)"),
         (2, "bad arguments, the file could not be read, or the export did not complete")),
    ),
    "export": (
        ("sqreen-otel export --since 7d > events.jsonl",
         f"sqreen-otel export {_URL_EXAMPLES[0]} --name sq.sdk.users.login",
         f"{_URL_EXAMPLES[1]} sqreen-otel export --ip 203.0.113.7 --since 2026-11-01 --until 24h"),
        ((0, "written (the count is on stderr)"), (1, "the explorer could not be reached or refused the request, "
                                                      "or the output was closed"),
         (2, "bad arguments")),
    ),
    "tail": (
        ("sqreen-otel tail --name sq.sdk.users.login", f"sqreen-otel tail {_URL_EXAMPLES[0]} --ip 203.0.113.7",
         f"{_URL_EXAMPLES[1]} sqreen-otel tail --from-start"),
        ((0, "stopped by Ctrl-C or SIGTERM"),
         (1, "the explorer could not be reached at start, or refused the request (a lost explorer is retried)"),
         (2, "bad arguments")),
    ),
    "block-user": (
        ("sqreen-otel block-user --id email=mallory@example.com --duration 3600",
         f"sqreen-otel block-user {_URL_EXAMPLES[0]} --id id=42",
         f"{_URL_EXAMPLES[1]} sqreen-otel block-user --id email=x@y.z"),
        _CLIENT_STATUS,
    ),
    "block-ip": (
        ("sqreen-otel block-ip 203.0.113.0/24", f"sqreen-otel block-ip {_URL_EXAMPLES[0]} 198.51.100.23 --duration 600",
         f"{_URL_EXAMPLES[1]} sqreen-otel block-ip 2001:db8::/32"),
        _CLIENT_STATUS,
    ),
    "unblock-user": (
        ("sqreen-otel unblock-user --id email=mallory@example.com",
         f"sqreen-otel unblock-user {_URL_EXAMPLES[0]} --id id=42"),
        ((0, "no block applies to the user any more"),
         (1, "the user is still blocked by another entry (listed), or the explorer could not be reached or refused"),
         (2, "bad arguments")),
    ),
    "unblock-ip": (
        ("sqreen-otel unblock-ip 203.0.113.0/24", f"{_URL_EXAMPLES[1]} sqreen-otel unblock-ip 198.51.100.23"),
        ((0, "no block applies to the address any more"),
         (1, "the address is still blocked by another entry (listed), or the explorer could not be reached or refused"),
         (2, "bad arguments")),
    ),
    "actions": (
        ("sqreen-otel actions", f"sqreen-otel actions {_URL_EXAMPLES[0]} --json",
         f"{_URL_EXAMPLES[1]} sqreen-otel actions"),
        _CLIENT_STATUS,
    ),
    "playbooks": (
        ("sqreen-otel playbooks check playbooks.yaml", "sqreen-otel playbooks test playbooks.yaml",
         "sqreen-otel playbooks backtest playbooks.yaml --events events.jsonl"),
        ((0, "good: a valid file, every test passed, the backtest done"),
         (1, "a bad file (its line and field on stderr), a failed test, or a database that cannot be read"),
         (2, "bad arguments")),
    ),
}  # fmt: skip


def epilog(name: str) -> str:
    """The examples and exit status of one command, for its --help."""
    examples, status = HELP.get(name, ((), _CLIENT_STATUS))
    lines = ["examples:", *(f"  {example}" for example in examples), ""] if examples else []
    lines += ["exit status:", *(f"  {code}  {meaning}" for code, meaning in status)]
    return "\n".join(lines)


def _subcommand(sub: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=help, epilog=epilog(name), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    return parser


def _port(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {raw!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, got {raw!r}")
    return value


def _positive(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {raw!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {raw!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "id", None) is not None:
        try:
            _identifiers(args.id)
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))
    return _commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
