"""`make run` on a fresh clone: every port from PORT, two portals side by side, and PostgreSQL/Redis
without a `var/` folder. Each test starts `scripts/run_all.py` as CI's smoke test does
(`scripts/smoke_run.sh`): its own throw-away folder, wait for /health, stop everything it started."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
STARTUP_SECONDS = 300  # migrate and the demo data (a month of history) come first


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_base(exclude: set[int] = frozenset()) -> int:
    """A PORT whose derived ports (PORT+10, PORT+420) are free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ports = {port, port + 10, port + 420}
        if port + 420 < 65535 and not ports & exclude and all(_free(p) for p in ports):
            return port
    raise AssertionError("no free ports")


@dataclass
class Portal:
    port: int
    var_dir: Path
    log: Path
    process: subprocess.Popen

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def health(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as answer:  # noqa: S310
                return answer.status
        except OSError:
            return 0


def _environ(port: int, var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    for name in ("SITE_URL", "CPMS_SIM_PORT", "STRIPE_SIM_PORT", "CPMS_SIMULATOR_URL", "STRIPE_API_BASE"):
        env.pop(name, None)
    env.update(PORT=str(port), PARKINGHQ_VAR_DIR=str(var_dir), PYTHONUNBUFFERED="1", **extra)
    return env


def _start(port: int, var_dir: Path, **extra: str) -> Portal:
    var_dir.parent.mkdir(parents=True, exist_ok=True)
    log = var_dir.parent / f"run-{port}.log"
    process = subprocess.Popen(  # noqa: S603
        [str(PYTHON), "scripts/run_all.py"],
        cwd=ROOT,
        env=_environ(port, var_dir, **extra),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return Portal(port, var_dir, log, process)


def _stop(portal: Portal) -> None:
    """The group first, then whatever still runs with this portal's folder (honcho gives each of its
    processes a session of its own)."""
    with suppress(ProcessLookupError):
        os.killpg(portal.process.pid, signal.SIGTERM)
    try:
        portal.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(portal.process.pid, signal.SIGKILL)
    marker = f"PARKINGHQ_VAR_DIR={portal.var_dir}".encode()
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                os.kill(int(environ.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


@contextmanager
def running(*portals: Portal) -> Iterator[None]:
    try:
        yield
    finally:
        for portal in portals:
            _stop(portal)


def _wait_until_up(*portals: Portal) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    waiting = list(portals)
    while waiting and time.monotonic() < deadline:
        for portal in list(waiting):
            if portal.process.poll() is not None:
                raise AssertionError(f"make run on {portal.port} stopped:\n{portal.output()[-3000:]}")
            if portal.health() == 200:
                waiting.remove(portal)
        time.sleep(1)
    assert not waiting, f"no answer on {[p.port for p in waiting]}:\n{waiting[0].output()[-3000:]}"


def _email_links(portal: Portal, timeout: float = 90) -> set[str]:
    """The portal addresses in the emails it wrote to its var/mail/ folder (the demo data sends some)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        links = set()
        for mail in (portal.var_dir / "mail").glob("*.eml"):
            links |= set(re.findall(r"http://127\.0\.0\.1:\d+", mail.read_text(errors="replace")))
        if links:
            return links
        time.sleep(1)
    raise AssertionError(f"no email with a link in {portal.var_dir / 'mail'}")


def test_two_portals_side_by_side_each_on_its_own_ports(tmp_path: Path) -> None:
    first_port = _free_base()
    second_port = _free_base({first_port, first_port + 10, first_port + 420})
    first = _start(first_port, tmp_path / "one" / "var")
    second = _start(second_port, tmp_path / "two" / "var")
    with running(first, second):
        _wait_until_up(first, second)
        for portal, other in ((first, second), (second, first)):
            banner = portal.output()
            assert f"portal {portal.port} (PORT)" in banner
            assert f"CPMS simulator {portal.port + 10} (CPMS_SIM_PORT)" in banner
            assert f"localstripe {portal.port + 420} (STRIPE_SIM_PORT)" in banner
            assert f"Links in emails and card pages: http://127.0.0.1:{portal.port} (SITE_URL)" in banner
            assert f"{other.port + 10}" not in banner
            # The demo data's emails (card links, notifications) point at this portal, not at 8000.
            assert _email_links(portal) == {f"http://127.0.0.1:{portal.port}"}
            # …and go to files, with one line each in the terminal instead of the whole message.
            assert re.search(r"mail → \S+@\S+: .+ \(\d+ KB\)", portal.output())
            assert "Content-Transfer-Encoding: base64" not in portal.output()
        # A third start on a port in use stops at once with the variable to set.
        busy = subprocess.run(  # noqa: S603
            [str(PYTHON), "scripts/run_all.py"],
            cwd=ROOT,
            env=_environ(first.port, tmp_path / "three" / "var"),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert busy.returncode != 0
        assert f"port {first.port} (PORT) is already in use" in busy.stderr
        assert "PORT=<free port> make run" in busy.stderr
        assert first.health() == 200


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database beside the test database (same server)."""
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/parkinghq")
    server, _, name = base.rpartition("/")
    fresh = f"{name}_fresh_run"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{fresh}"')
    yield f"{server}/{fresh}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')


def test_postgres_and_redis_on_a_fresh_clone_without_var(tmp_path: Path, fresh_database: str) -> None:
    var_dir = tmp_path / "clone" / "var"  # does not exist: a fresh clone has none
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    portal = _start(_free_base(), var_dir, DATABASE_URL=fresh_database, REDIS_URL=redis_url)
    with running(portal):
        _wait_until_up(portal)
        deadline = time.monotonic() + 60
        while "beat: Starting" not in portal.output() and time.monotonic() < deadline:
            time.sleep(1)
        assert "beat: Starting" in portal.output(), portal.output()[-3000:]
        time.sleep(3)
        assert not re.search(r"beat\.1 +\| .*(Errno 2|No such file)", portal.output())
        assert "beat.1 stopped" not in portal.output()
        assert (var_dir / "celerybeat-schedule").exists() or list(var_dir.glob("celerybeat-schedule*"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
