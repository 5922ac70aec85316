"""Real services for fault tests: a private PostgreSQL cluster, a private Redis, the portal
under gunicorn and a Celery worker, each a separate OS process that a test may kill or restart.

They are private (own ports, own data folders) so stopping them never disturbs the shared
PostgreSQL and Redis that the rest of the suite uses.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], bool], *, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001, S110 - the service is still coming up
            pass
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} was not found under /usr/lib/postgresql")
    return str(found[-1])


class PrivatePostgres:
    """A throw-away PostgreSQL cluster in a temp folder, run as the postgres system user."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="phq-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self._as_postgres(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        subprocess.run(
            [_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "faults"],
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/faults"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            _pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )

    def stop(self) -> None:
        self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: port_open(self.port), what="private Redis")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        wait_for(lambda: not port_open(self.port), what="private Redis to stop")

    def close(self) -> None:
        self.stop()


class Service:
    """A long-running process of ours (gunicorn, a Celery worker) in its own process group."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.args, self.env = name, args, env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log, stderr=log, start_new_session=True)

    def kill(self) -> None:
        """SIGKILL the whole group: the worker has no chance to ack, release or clean up."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Stack:
    """PostgreSQL + Redis + gunicorn + a worker, with manage.py commands run against them."""

    def __init__(self) -> None:
        self.pg = PrivatePostgres()
        self.redis = PrivateRedis()
        self.dir = Path(tempfile.mkdtemp(prefix="phq-stack-"))
        self.web_port = free_port()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "parkinghq.settings.test",
            "DATABASE_URL": self.pg.url,
            "REDIS_URL": self.redis.url,
            "PARKINGHQ_VAR_DIR": str(self.dir),
            "CPMS_SIMULATOR_URL": os.environ.get("CPMS_SIMULATOR_URL", "http://127.0.0.1:9"),
            "PYTHONUNBUFFERED": "1",
            # The stack has real workers: system steps go to the broker as in production.
            "WORKFLOWS_DISPATCH": "true",
            # Caches on, as in production: a stopped Redis must not break the pages that use them.
            "MONITORING_CACHE": "true",
        }
        self.web = Service(
            "web",
            [str(VENV_BIN / "gunicorn"), "parkinghq.wsgi", "-b", f"127.0.0.1:{self.web_port}", "-w", "2", "-t", "60"],
            self.env,
            self.dir,
        )
        self.worker = Service(
            "worker",
            [
                str(VENV_BIN / "celery"),
                "-A",
                "parkinghq",
                "worker",
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=INFO",
            ],
            self.env,
            self.dir,
        )
        self.manage("migrate", "--noinput")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def manage(self, *args: str, timeout: float = 180) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def shell(self, code: str) -> str:
        """Run Python inside the stack's Django (its database); returns what it printed."""
        return self.manage("shell", "-c", code)

    def get(self, path: str, *, timeout: float = 10) -> int:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=timeout) as response:  # noqa: S310
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    def start_web(self) -> None:
        self.web.start()
        wait_for(lambda: self.get("/accounts/login/") == 200, timeout=60, what="gunicorn")

    def close(self) -> None:
        for service in (self.worker, self.web):
            service.stop()
        self.redis.close()
        self.pg.close()
        shutil.rmtree(self.dir, ignore_errors=True)
