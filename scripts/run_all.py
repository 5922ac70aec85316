"""Start web, worker, beat (and the CPMS simulator) together; print where to log in; Ctrl-C stops all."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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
    port = os.environ.get("PORT", "8000")
    venv_bin = str(ROOT / ".venv" / "bin")
    os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
    print("\n  ParkingHQ Business Workflow is starting (web, worker, beat).")
    print(f"  Open http://127.0.0.1:{port}/ and log in with one of these demo users (password: demo):")
    for username, role in DEMO_USERS:
        print(f"    {username:<11} {role}")
    print("  Administrator, Workflow admin and Supervisor enrol a TOTP authenticator at first login.")
    print("  Press Ctrl-C to stop everything.\n", flush=True)
    os.chdir(ROOT)
    os.execvp("honcho", ["honcho", "-f", "Procfile.dev", "start"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
