"""``sqreen-otel serve`` binds before it prints its banner, and every command's --help lists its exit status.

Real subprocesses of the venv's console script; the busy port is a real socket listening on loopback.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from explorer_process import CLI, ENV, HOST, http

from sqreen_otel.cli import EXIT_CANNOT_LISTEN, HELP, _commands

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX subprocesses and signals")


def test_serve_on_a_busy_port_prints_no_banner_and_exits_3(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [CLI, "serve", "--db", str(tmp_path / "e.sqlite"), "--port", str(port)],
            capture_output=True, text=True, env=ENV, timeout=60,
        )  # fmt: skip
    assert result.returncode == EXIT_CANNOT_LISTEN == 3
    assert result.stdout == ""  # no "Event Explorer on ..." for a server that never ran
    assert result.stderr == f"sqreen-otel serve: cannot listen on {HOST}:{port}: Address already in use\n"


def test_serve_with_an_unusable_address_or_database(tmp_path: Path) -> None:
    result = subprocess.run([CLI, "serve", "--db", str(tmp_path / "e.sqlite"), "--host", "192.0.2.1", "--token", "t",
                             "--port", "0"], capture_output=True, text=True, env=ENV, timeout=60)  # fmt: skip
    assert (result.returncode, result.stdout) == (3, "")
    assert result.stderr.startswith("sqreen-otel serve: cannot listen on 192.0.2.1:0: ")
    result = subprocess.run([CLI, "serve", "--db", str(tmp_path), "--port", "0"], capture_output=True, text=True,
                            env=ENV, timeout=60)  # fmt: skip
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"sqreen-otel serve: cannot open the database {tmp_path}: unable to open database file\n"
    result = subprocess.run([CLI, "serve", "--port", "70000"], capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode == 2 and "expected a port number from 0 to 65535, got '70000'" in result.stderr


def test_serve_prints_the_banner_once_listening_with_the_real_port(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [CLI, "serve", "--db", str(tmp_path / "e.sqlite"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        match = re.fullmatch(
            r"Event Explorer on (http://127\.0\.0\.1:(\d+))/  \(OTLP logs: \1/v1/logs, actions: \1/v1/actions\)\n",
            banner,
        )
        assert match, banner
        assert match[2] != "0"
        # Printed after the bind: the port already accepts connections (answered once uvicorn runs).
        socket.create_connection((HOST, int(match[2])), timeout=5).close()
        assert http.get(match[1] + "/v1/actions", timeout=10).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("name", sorted(HELP))
def test_every_command_help_lists_examples_and_exit_status(name: str) -> None:
    result = subprocess.run([CLI, name, "--help"], capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode == 0, result.stderr
    help_text = " ".join(result.stdout.split())
    examples, status = HELP[name]
    assert "examples:" in help_text and "exit status:" in help_text
    for example in examples:
        assert " ".join(example.split()) in help_text
    codes = re.findall(r"^  (\d)  ", result.stdout.split("exit status:")[1], re.M)
    assert codes == [str(code) for code, _ in status] and "0" in codes and "2" in codes
    for _, meaning in status:
        assert " ".join(meaning.split()) in help_text


def test_every_command_has_a_help_entry_and_client_examples_name_url_and_its_variable() -> None:
    assert set(_commands) <= set(HELP), "add the new command's examples and exit status to HELP"
    for name in ("tail", "block-user", "block-ip", "actions"):
        examples = " ".join(HELP[name][0])
        assert "--url " in examples and "SQREEN_OTEL_EXPLORER_URL=" in examples, name
