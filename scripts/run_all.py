"""`make run`: migrate, load the demo data, then start web, worker and beat together (honcho).

Reads `.env` when present (the same file honcho gives the processes), so migrations and the demo
loader use the same database as the processes. Prints the URL and the demo logins; Ctrl-C stops all.
"""

from __future__ import annotations

import os
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


def main() -> int:
    os.chdir(ROOT)
    env_file = ROOT / ".env"
    if env_file.exists():
        for key, value in parse(env_file.read_text()).items():
            os.environ.setdefault(key, value)
    port = os.environ.setdefault("PORT", "8000")
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
    print("  Press Ctrl-C to stop everything.\n", flush=True)
    os.execvp("honcho", ["honcho", "-f", "Procfile.dev", "start"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
