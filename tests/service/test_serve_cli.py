"""`tailor serve` refuses an address it cannot listen on before it loads anything: one `error:` line that says
what to do, instead of a start-up banner followed by uvicorn's errno (found by a new-user trial)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import main
from tailor.settings import Settings

pytestmark = pytest.mark.unit


def _refused(result: Result) -> str:
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Tailor service on" not in result.stderr and "warning" not in result.stderr
    return result.stderr


def test_a_port_in_use_is_named_with_what_to_do(settings: Settings) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        error = _refused(CliRunner().invoke(main, ["serve", "--port", str(port)]))
    assert f"port {port} on 127.0.0.1 is in use: choose another with --port, or stop what holds it" in error


def test_port_zero_is_refused_rather_than_announced_as_zero(settings: Settings) -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "0"])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--port': 0 is not in the range 1<=x<=65535" in result.output


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("999.1.1.1", "--host '999.1.1.1' is not an address this machine can listen on"),
        ("192.0.2.77", "--host 192.0.2.77 is not an address of this machine"),  # TEST-NET-1: never assigned here
    ],
)
def test_a_host_that_is_not_this_machines_is_refused_before_the_network_warning(
    settings: Settings, host: str, message: str
) -> None:
    error = _refused(CliRunner().invoke(main, ["serve", "--host", host, "--port", "8000"]))
    assert message in error and "e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)" in error


def test_a_home_that_does_not_exist_is_said_at_start(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a trial: a mistyped TAILOR_HOME started a service whose every page was 503 "not ready", with nothing
    saying why. It still starts (a service may come up before the first run), with a note."""
    started: list[int] = []
    monkeypatch.setattr("cli.serve._run", lambda host, port, *rest: started.append(port))
    missing = tmp_path / "no-such-home"
    with socket.socket() as probe:  # a port free now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(main, ["serve", "--port", str(port)], env={"TAILOR_HOME": str(missing)})
    assert result.exit_code == 0 and started == [port], result.stderr
    assert f"note: {missing} does not exist (TAILOR_HOME): recommendations answer 503 until `tailor run`" in (
        result.stderr
    )
    assert not missing.exists()  # starting made nothing
    # An existing home: no note.
    settings.home.mkdir(parents=True)
    result = CliRunner().invoke(main, ["serve", "--port", str(port)], env={"TAILOR_HOME": str(settings.home)})
    assert result.exit_code == 0 and "note:" not in result.stderr
