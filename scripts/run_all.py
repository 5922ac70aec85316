"""`make run`: migrate, load the demo data, then start web, worker and beat together (honcho).

Reads `.env` when present (the same file honcho gives the processes), so migrations and the demo
loader use the same database as the processes. Prints the URL and the demo logins; Ctrl-C stops all.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from honcho.environ import parse

ROOT = Path(__file__).resolve().parent.parent
DEMO_PASSWORD = "demo-season-pass"  # noqa: S105 - accounts.demo.DEMO_PASSWORD (no Django here)
DEMO_USERS = [
    ("admin", "Administrator"),
    ("wfadmin", "Workflow admin"),
    ("supervisor", "Supervisor"),
    ("agent", "Back-office agent"),
    ("finance", "Finance"),
    ("care", "Customer care"),
    ("manager", "Car-park manager"),
]


def _port(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SystemExit(f"make run: {name} must be a port number (1-65535), got {value!r}")
    return int(value)


def _busy(port: int) -> bool:
    """True when something on this machine already listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def configure_ports() -> dict[str, int]:
    """Every port of `make run` from one place: PORT (8000), CPMS_SIM_PORT (PORT+10), STRIPE_SIM_PORT
    (PORT+420); SITE_URL, the CPMS simulator's and localstripe's URLs follow unless set. A port in use
    stops the start with the variable to set (a second portal never shares the first one's simulators)."""
    port = _port("PORT", 8000)
    ports = {
        "PORT": port,
        "CPMS_SIM_PORT": _port("CPMS_SIM_PORT", port + 10),
        "STRIPE_SIM_PORT": _port("STRIPE_SIM_PORT", port + 420),
    }
    if len(set(ports.values())) != len(ports):
        raise SystemExit(f"make run: the ports must differ, got {ports}")
    for name, number in ports.items():
        if _busy(number):
            raise SystemExit(
                f"make run: port {number} ({name}) is already in use, perhaps by another `make run`. "
                f"Stop that one, or choose another port: {name}=<free port> make run"
            )
        os.environ[name] = str(number)
    os.environ.setdefault("SITE_URL", f"http://127.0.0.1:{port}")
    os.environ.setdefault("CPMS_SIMULATOR_URL", f"http://127.0.0.1:{ports['CPMS_SIM_PORT']}")
    os.environ.setdefault("STRIPE_API_BASE", f"http://127.0.0.1:{ports['STRIPE_SIM_PORT']}")
    return ports


def main() -> int:
    os.chdir(ROOT)
    env_file = ROOT / ".env"
    if env_file.exists():
        for key, value in parse(env_file.read_text()).items():
            os.environ.setdefault(key, value)
    ports = configure_ports()
    port = ports["PORT"]
    # Beat's schedule, the mail folder and the embedded broker live here, whatever the database.
    var_dir = Path(os.environ.get("PARKINGHQ_VAR_DIR") or ROOT / "var")
    for folder in (var_dir, var_dir / "mail"):
        folder.mkdir(parents=True, exist_ok=True)
    venv_bin = str(ROOT / ".venv" / "bin")
    os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    python = str(ROOT / ".venv" / "bin" / "python")
    for step in (["migrate", "--noinput"], ["demo_load"]):
        if subprocess.call([python, "manage.py", *step]) != 0:
            print(f"make run: manage.py {' '.join(step)} failed", file=sys.stderr)
            return 1
    where = "PostgreSQL" if os.environ.get("DATABASE_URL") else "SQLite (var/db.sqlite3)"
    broker = "Redis" if os.environ.get("REDIS_URL") else "the embedded filesystem broker (var/broker)"
    print("\n  ParkingHQ Business Workflow is starting: web, worker and beat.")
    print(f"  Data in {where}; background jobs through {broker}.")
    print(f"  Open http://127.0.0.1:{port}/ and log in with a demo user (password: {DEMO_PASSWORD}):")
    for username, role in DEMO_USERS:
        print(f"    {username:<11} {role}")
    print("  admin, wfadmin and supervisor set up an authenticator app (TOTP) at their first login.")
    print(f"  Ports: portal {port} (PORT), CPMS simulator {ports['CPMS_SIM_PORT']} (CPMS_SIM_PORT),")
    print(f"         localstripe {ports['STRIPE_SIM_PORT']} (STRIPE_SIM_PORT).")
    print(f"  Links in emails and card pages: {os.environ['SITE_URL']} (SITE_URL).")
    print(f"  Emails are written to {var_dir / 'mail'} (one .eml each); admin sees them under Outbox (/outbox/).")
    print("  REST API: admin sees the demo client's token under Technical administration › API clients.")
    print("  Press Ctrl-C to stop everything.\n", flush=True)
    os.execvp("honcho", ["honcho", "-f", "Procfile.dev", "start"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
