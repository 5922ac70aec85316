"""Fixtures shared by the cross-app tests in ``tests/``.

The real peers the apps' own tests start, made available here without copying them:
``localstripe_url`` / ``stripe_settings`` (a localstripe server, from billing's tests) and ``sim`` /
``connection`` (the CPMS simulator on a free port and a connection to it, from connect's tests).

``demo``: the demo data (``demo_load``: a user of every role and their car parks, customers, tasks …),
loaded once for a test module inside a transaction rolled back at the module's end.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction

from billing.tests.conftest import localstripe_url, stripe_settings  # noqa: F401  (fixtures)
from connect.tests.conftest import connection, sim  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def demo(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """The demo data, loaded once for the module inside a transaction rolled back at its end."""
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            call_command("demo_load", stdout=StringIO())
            yield
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
