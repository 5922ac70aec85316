"""A schemathesis run over /api/schema/ against the WSGI app: no request may produce a 5xx."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from parkinghq.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def keep_connection():
    """Like Django's test client: the WSGI app must not close the test's connection after each request."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_data(db, settings, keep_connection):
    from carparks import services
    from carparks.api.authentication import api_client_create
    from carparks.models import ApiClient
    from carparks.tests.factories import CustomerFactory, ProductFactory

    settings.CARPARKS_API_RATE = "100000/minute"
    product = ProductFactory(quota=2)
    for plate in ("A1", "A2", "A3"):
        services.contract_apply(customer=CustomerFactory(), product=product, vehicles=[plate])
    _, token = api_client_create(name="schemathesis", scopes=list(ApiClient.Scope.values))
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_request_produces_a_server_error(case, api_data):
    case.call_and_validate(headers=api_data, checks=[not_a_server_error])
