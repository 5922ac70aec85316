"""Billing test fixtures: a real localstripe server for the whole session, users by role."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from accounts import roles

DEFINITIONS = Path(__file__).resolve().parent.parent / "definitions"


# The `localstripe` console script, except that its state file (hard-wired to /tmp/localstripe.pickle,
# shared by every instance on the machine) goes to this server's own TMPDIR.
LOCALSTRIPE_PRIVATE_STATE = """
import os, pickle, tempfile
from localstripe import resources
path = os.path.join(tempfile.gettempdir(), "localstripe.pickle")
def dump(self):
    with open(path, "wb") as handle:
        pickle.dump(self, handle, protocol=pickle.HIGHEST_PROTOCOL)
resources.Store.dump_to_disk = dump
resources.Store.try_load_from_disk = lambda self: None
from localstripe.server import start
start()
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def localstripe_url():
    """Start ``localstripe`` on a free port with its own TMPDIR; stop it after the session."""
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="localstripe-")
    env = {**os.environ, "TMPDIR": tmp}
    log = open(Path(tmp) / "localstripe.log", "wb")  # noqa: SIM115 - kept open while the server runs
    process = subprocess.Popen(
        [sys.executable, "-c", LOCALSTRIPE_PRIVATE_STATE, "--port", str(port), "--from-scratch"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            request = urllib.request.Request(f"{url}/v1/customers", headers={"Authorization": "Bearer sk_test_x"})
            with urllib.request.urlopen(request, timeout=1):  # noqa: S310 - our own local server
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(
                    f"localstripe did not start: {(Path(tmp) / 'localstripe.log').read_text()}"
                ) from None
            time.sleep(0.1)
    yield url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def stripe_settings(settings, localstripe_url):
    """Point the Stripe client at the session's localstripe."""
    settings.STRIPE_API_BASE = localstripe_url
    settings.STRIPE_SECRET_KEY = "sk_test_parkinghq_tests"
    return settings


@pytest.fixture(autouse=True)
def _media_and_exports(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ACCOUNTING_EXPORT_DIR = tmp_path / "accounting-export"


def engine_available() -> bool:
    try:
        from workflows.services import definition_install, process_start  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(autouse=True)
def _billing_definitions(request):
    """Install the billing process definitions before every database test (once the engine exists)."""
    if request.node.get_closest_marker("django_db") is None or not engine_available():
        return
    request.getfixturevalue("django_db_blocker")
    from workflows.services import definition_install

    for path in sorted(DEFINITIONS.glob("*.json")):
        definition_install(spec=json.loads(path.read_text()))


def _user(django_user_model, username: str, *role_names: str):
    user = django_user_model.objects.create_user(username, password="x", email=f"{username}@parkinghq.example")
    for name in role_names:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.fixture
def finance_user(django_user_model):
    return _user(django_user_model, "fin", roles.FINANCE)


@pytest.fixture
def agent_user(django_user_model):
    return _user(django_user_model, "agent", roles.AGENT)


@pytest.fixture
def admin_user_role(django_user_model):
    return _user(django_user_model, "boss", roles.ADMINISTRATOR)
