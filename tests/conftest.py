"""Fixtures shared by the cross-app tests in ``tests/``.

The real peers the apps' own tests start, made available here without copying them:
``localstripe_url`` / ``stripe_settings`` (a localstripe server, from billing's tests) and ``sim`` /
``connection`` (the CPMS simulator on a free port and a connection to it, from connect's tests).
"""

from __future__ import annotations

from billing.tests.conftest import localstripe_url, stripe_settings  # noqa: F401  (fixtures)
from connect.tests.conftest import connection, sim  # noqa: F401  (fixtures)
