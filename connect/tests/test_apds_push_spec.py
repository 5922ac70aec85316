"""The credential push as APDS 4 specifies it, against the bundled simulator over HTTP and PostgreSQL.

- Assigned rights refer to the RightSpecifications the CPMS publishes (``GET /rights/specs``), chosen
  per product on the connection's mapping page; an unmapped product uses the place's only one.
- Every change is a new version of the AssignedRight (read it, send its version + 1); an identical
  right is not sent again; what the CPMS holds after the PUT is read back and compared.
- Login with OAuth2 client credentials (APDS ``securitySchemes.oAuth``): a token is fetched, reused,
  fetched again when it expired or the CPMS refuses it, and a refused client secret fails clearly.

The simulator runs in strict mode here (``POST /_sim/rights {"strict": true}``): like a real CPMS it
refuses unknown RightSpecification references and versions that are not newer than the stored one.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEntry
from accounts.roles import ADMINISTRATOR, MANAGER, SUPERVISOR
from carparks.models import CarPark, Contract, Credential
from connect import services
from connect.adapters import ApdsAdapter, CpmsNotSupported
from connect.models import CpmsConnection, ProductRightMapping, SyncRun
from connect.tasks import push_credentials_task

from .conftest import DATA, make_contract

pytestmark = pytest.mark.django_db

SCHEMA = json.loads((Path(__file__).resolve().parent / "schemas" / "apds4.schema.json").read_text())
MAP_HINT = "to a RightSpecification on the connection's mapping page"


# --- helpers -------------------------------------------------------------------------------------
def published(sim: Any, place_id: str) -> list[dict[str, Any]]:
    """The RightSpecifications the simulator publishes for a place, read over HTTP (as a CPMS user would)."""
    body = requests.get(f"{sim.url}/rights/specs", params={"place": place_id}, timeout=5).json()
    return [spec for spec in body["data"] if place_id in [ref["id"] for ref in spec["hierarchyElements"]]]


def right_version(sim: Any, right_id: str, version: int) -> dict[str, Any]:
    return requests.get(f"{sim.url}/rights/assigned/{right_id}", params={"version": version}, timeout=5).json()


def tokens(sim: Any, **settings: Any) -> dict[str, Any]:
    return sim.control("POST", "tokens", settings)


def map_product(connection: CpmsConnection, contract: Contract, spec: dict[str, Any]) -> ProductRightMapping:
    return ProductRightMapping.objects.create(
        connection=connection,
        product=contract.product,
        right_specification_id=spec["id"],
        right_specification_version=spec["version"],
    )


@pytest.fixture
def strict(sim) -> Any:
    sim.control("POST", "rights", {"strict": True})
    return sim


@pytest.fixture
def imported(strict, connection) -> CpmsConnection:
    services.sync_static(connection=connection)
    return connection


@pytest.fixture
def one_spec_carpark(imported, strict) -> CarPark:
    """A car park whose place has exactly one published RightSpecification."""
    for link in imported.links.select_related("carpark").order_by("external_id"):
        if len(published(strict, link.external_id)) == 1:
            return link.carpark
    raise AssertionError("the simulator publishes no place with exactly one RightSpecification")


@pytest.fixture
def two_spec_carpark(imported, strict) -> CarPark:
    """A car park whose place has two published RightSpecifications (standard and premium)."""
    for link in imported.links.select_related("carpark").order_by("external_id"):
        if len(published(strict, link.external_id)) == 2:
            return link.carpark
    raise AssertionError("the simulator publishes no place with two RightSpecifications")


# --- mapped specification, versions, read-back -------------------------------------------------
def test_the_push_refers_to_the_mapped_specification_and_its_version(strict, imported, two_spec_carpark):
    contract = make_contract(two_spec_carpark, plates=("M-AB 123",))
    standard, premium = published(strict, two_spec_carpark.cpms_reference)
    map_product(imported, contract, premium)
    right_id = f"phq-credential-{contract.credentials.get().pk}"

    run = services.credentials_push(contract=contract)

    assert (run.status, run.created, run.updated) == ("succeeded", 1, 0)
    held = strict.right(right_id)
    assert held["rightSpecification"]["id"] == premium["id"] != standard["id"]
    assert held["rightSpecification"]["version"] == premium["version"] > 1  # the CPMS's version, not ours
    assert held["version"] == 1
    assert held["rightHolder"]["credentials"] == [
        {"type": "licensePlate", "identifier": {"id": "MAB123", "className": "LicensePlate"}}
    ]
    assert not premium["id"].endswith("-season")
    assert run.details["credentials"][0]["outcome"] == "created"


def test_a_changed_plate_is_sent_as_the_next_version(strict, imported, two_spec_carpark):
    contract = make_contract(two_spec_carpark, plates=("M-AB 123",))
    map_product(imported, contract, published(strict, two_spec_carpark.cpms_reference)[0])
    credential = contract.credentials.get()
    right_id = f"phq-credential-{credential.pk}"
    services.credentials_push(contract=contract)
    Credential.objects.filter(pk=credential.pk).update(identifier="MXY999")

    run = services.credentials_push(contract=contract)

    assert (run.status, run.created, run.updated) == ("succeeded", 0, 1)
    assert run.details["credentials"][0]["outcome"] == "updated"
    held = strict.right(right_id)
    assert held["version"] == 2
    assert held["rightHolder"]["credentials"][0]["identifier"]["id"] == "MXY999"
    assert right_version(strict, right_id, 1)["rightHolder"]["credentials"][0]["identifier"]["id"] == "MAB123"


def test_an_unchanged_right_is_not_sent_again(strict, imported, two_spec_carpark):
    contract = make_contract(two_spec_carpark, plates=("M-AB 123",))
    map_product(imported, contract, published(strict, two_spec_carpark.cpms_reference)[1])
    right_id = f"phq-credential-{contract.credentials.get().pk}"
    services.credentials_push(contract=contract)
    served = strict.control("GET", "state")["requests_served"]

    run = services.credentials_push(contract=contract)

    assert strict.control("GET", "state")["requests_served"] - served == 1, "only the GET of the right"
    assert (run.status, run.created, run.updated, run.unchanged) == ("succeeded", 0, 0, 1)
    assert run.details["credentials"][0]["outcome"] == "unchanged"
    assert strict.right(right_id)["version"] == 1, "no PUT: a PUT would have written version 2"


def test_a_changed_validity_is_a_new_version_too(strict, imported, one_spec_carpark):
    contract = make_contract(one_spec_carpark, plates=("M-AB 123",))
    right_id = f"phq-credential-{contract.credentials.get().pk}"
    services.credentials_push(contract=contract)
    Contract.objects.filter(pk=contract.pk).update(end_date="2027-06-30")

    run = services.credentials_push(contract=Contract.objects.get(pk=contract.pk))

    held = strict.right(right_id)
    assert (run.updated, held["version"], held["expiry"]) == (1, 2, "2027-06-30T23:59:59Z")


class _RewritingCpms(http.server.BaseHTTPRequestHandler):
    """A CPMS front that stores what it is sent but answers reads with a shortened plate (a real
    failure mode: a CPMS truncating identifiers to its column width)."""

    upstream = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _forward(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
        answer = requests.request(method, self.upstream + self.path, data=body, headers=headers, timeout=5)
        payload = answer.content
        if method == "GET" and self.path.startswith("/rights/assigned/") and answer.status_code == 200:
            right = answer.json()
            for credential in right["rightHolder"]["credentials"]:
                credential["identifier"]["id"] = credential["identifier"]["id"][:5]
            payload = json.dumps(right).encode()
        self.send_response(answer.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802
        self._forward("GET")

    def do_PUT(self) -> None:  # noqa: N802
        self._forward("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._forward("DELETE")


@pytest.fixture
def rewriting_front(strict) -> Iterator[str]:
    handler = type("Front", (_RewritingCpms,), {"upstream": strict.url})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_right_read_back_differently_fails_the_push_and_says_what_differs(
    strict, imported, one_spec_carpark, rewriting_front
):
    CpmsConnection.objects.filter(pk=imported.pk).update(base_url=rewriting_front)
    contract = make_contract(one_spec_carpark, plates=("M-AB 123",))

    result = push_credentials_task.apply(args=[contract.pk])

    run = SyncRun.objects.get(kind="push")
    assert result.failed()
    assert (run.status, run.incident, run.attempts) == ("failed", True, 1)
    assert "differently from what was sent" in run.errors[-1]
    assert "credentials licensePlate MAB12 instead of licensePlate MAB123" in run.errors[-1]
    assert contract.credentials.get().cpms_synced_at is None


# --- without a mapping -----------------------------------------------------------------------------
def test_an_unmapped_product_uses_the_places_only_specification(strict, imported, one_spec_carpark):
    contract = make_contract(one_spec_carpark, plates=("M-AB 123",))
    [only] = published(strict, one_spec_carpark.cpms_reference)

    run = services.credentials_push(contract=contract)

    held = strict.right(f"phq-credential-{contract.credentials.get().pk}")
    assert run.status == "succeeded" and run.created == 1
    assert (held["rightSpecification"]["id"], held["rightSpecification"]["version"]) == (only["id"], only["version"])


def test_an_unmapped_product_with_two_specifications_fails_once_and_says_what_to_do(strict, imported, two_spec_carpark):
    contract = make_contract(two_spec_carpark, plates=("M-AB 123",))

    result = push_credentials_task.apply(args=[contract.pk])

    run = SyncRun.objects.get(kind="push")
    assert result.failed()
    assert (run.status, run.incident, run.attempts) == ("failed", True, 1), "not retried"
    assert f"Map product “Season ticket” ({two_spec_carpark.code}) {MAP_HINT}" in run.errors[-1]
    assert strict.rights() == []


# --- OAuth2 client credentials -----------------------------------------------------------------------
@pytest.fixture
def oauth(strict, imported, one_spec_carpark) -> CpmsConnection:
    """The connection logs in with OAuth2 client credentials; the simulator then requires a token."""
    tokens(strict, clients={"phq-portal": "client-s3cret"}, require=True, expires_in=3600, revoke=True)
    imported.options = {"token_url": "auth", "client_id": "phq-portal", "scope": "sp"}
    imported.set_secret("client-s3cret")
    imported.save()
    return imported


def test_a_token_is_fetched_once_and_reused(strict, oauth, one_spec_carpark):
    first = make_contract(one_spec_carpark, plates=("M-AB 123",))
    second = make_contract(one_spec_carpark, plates=("M-CD 456",))

    runs = [services.credentials_push(contract=first), services.credentials_push(contract=second)]

    assert [run.status for run in runs] == ["succeeded", "succeeded"]
    assert tokens(strict)["issued"] == 1, "one token for both pushes (and every request of each)"
    assert len(strict.rights()) == 2


def test_an_expired_token_is_replaced_without_a_failed_run(strict, oauth, one_spec_carpark):
    tokens(strict, expires_in=2)
    contract = make_contract(one_spec_carpark, plates=("M-AB 123",))
    services.credentials_push(contract=contract)
    time.sleep(2.2)
    Credential.objects.filter(contract=contract).update(identifier="MXY999")
    served = strict.control("GET", "state")["requests_served"]

    run = services.credentials_push(contract=contract)

    assert (run.status, run.attempts, run.errors) == ("succeeded", 1, [])
    assert tokens(strict)["issued"] == 2
    requests_made = strict.control("GET", "state")["requests_served"] - served
    assert requests_made == 4, "specs, GET, PUT, GET with the new token: the expired one was not even tried (no 401)"


def test_a_token_the_cpms_refuses_is_refreshed_once_and_the_request_retried(strict, oauth, one_spec_carpark):
    contract = make_contract(one_spec_carpark, plates=("M-AB 123",))
    services.credentials_push(contract=contract)
    tokens(strict, revoke=True)  # the CPMS forgets our still-fresh token (a restart, a key rotation)
    Credential.objects.filter(contract=contract).update(identifier="MXY999")

    run = services.credentials_push(contract=contract)

    assert (run.status, run.attempts, run.errors) == ("succeeded", 1, [])
    assert tokens(strict, require=False)["issued"] == 1, "revoked ones are gone; exactly one new token was issued"
    assert strict.right(f"phq-credential-{contract.credentials.get().pk}")["version"] == 2
    assert CpmsConnection.objects.get(pk=oauth.pk).status == "ok"


def test_the_client_secret_is_never_sent_as_a_bearer_token(strict, oauth, one_spec_carpark):
    tokens(strict, clients={"phq-portal": "client-s3cret"}, require=False)
    seen: list[str] = []
    adapter = oauth.adapter()
    adapter.session.hooks["response"].append(lambda r, **kw: seen.append(r.request.headers.get("Authorization")))

    adapter.list_right_specifications()

    assert seen and all(header.startswith("Bearer ") for header in seen)
    assert "Bearer client-s3cret" not in seen


def test_a_wrong_client_secret_fails_the_push_clearly_without_retries(strict, oauth, one_spec_carpark):
    oauth.set_secret("not-the-secret")
    oauth.save()
    contract = make_contract(one_spec_carpark, plates=("M-AB 123",))

    result = push_credentials_task.apply(args=[contract.pk])

    run = SyncRun.objects.get(kind="push")
    assert result.failed()
    assert (run.status, run.incident, run.attempts) == ("failed", True, 1)
    assert "the CPMS refused client id phq-portal: check the client secret" in run.errors[-1]
    assert tokens(strict)["issued"] == 0 and strict.rights() == []


class _RecordingTokenEndpoint(http.server.BaseHTTPRequestHandler):
    """A token endpoint that records how the client authenticated and issues one-hour tokens."""

    seen: list[dict[str, str]]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.seen.append({"authorization": self.headers.get("Authorization", ""), "body": body})
        payload = json.dumps({"access_token": "tok-1", "token_type": "bearer", "expires_in": 3600}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.mark.parametrize("token_auth", ["basic", ""])
def test_the_client_authenticates_in_the_form_body_or_with_http_basic(token_auth):
    import base64

    seen: list[dict[str, str]] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("T", (_RecordingTokenEndpoint,), {"seen": seen}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        options = {"token_url": f"{url}/oauth/token", "client_id": f"phq-{token_auth or 'body'}", "scope": "sp"}
        adapter = ApdsAdapter(
            base_url="http://127.0.0.1:9", secret="client-s3cret", options=options | {"token_auth": token_auth}
        )
        assert adapter.credentials.token() == "tok-1"
    finally:
        server.shutdown()
        server.server_close()

    [request] = seen
    assert "grant_type=client_credentials" in request["body"] and "scope=sp" in request["body"]
    if token_auth == "basic":
        expected = base64.b64encode(b"phq-basic:client-s3cret").decode()
        assert request["authorization"] == f"Basic {expected}"
        assert "client_secret" not in request["body"]
    else:
        assert request["authorization"] == ""
        assert "client_id=phq-body" in request["body"] and "client_secret=client-s3cret" in request["body"]


# --- published RightSpecifications, read from documents written from the specification ---------------
def schema_errors(document: Any, definition: str) -> list[Any]:
    validator = jsonschema.Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{definition}"})
    return list(validator.iter_errors(document))


def test_the_fixtures_are_valid_right_specification_lists_except_the_broken_item():
    document = json.loads((DATA / "apds-rights" / "rights" / "specs").read_text())
    broken = json.loads((DATA / "apds-rights-broken" / "rights" / "specs").read_text())

    assert schema_errors(document, "RightSpecificationList") == []
    errors = schema_errors(broken, "RightSpecificationList")
    assert [list(error.absolute_path)[:2] for error in errors] == [["data", 0]], "only BROKEN-9 is invalid"
    assert "'version' is a required property" in errors[0].message or errors[0].context


def test_right_specifications_are_read_as_published(feed_server):
    adapter = ApdsAdapter(base_url=f"{feed_server}/apds-rights", options={"languages": ["de", "en"]})

    specs = adapter.list_right_specifications()

    by_id = {spec.id: spec for spec in specs}
    assert sorted(by_id) == ["DP-STD-2026", "PERMIT-NIGHT-7", "VIS-1"] and specs.refused == []
    standard = by_id["DP-STD-2026"]
    assert (standard.version, standard.name, standard.place_ids) == (4, "Dauerparken Standard", ("P-HBF", "P-OST"))
    assert standard.names == {"de": "Dauerparken Standard", "en": "Season parking standard"}
    assert by_id["PERMIT-NIGHT-7"].name == "Night permit", "only English given: English it is"
    assert by_id["PERMIT-NIGHT-7"].credential_types == ("hangtag", "vehicleplate")
    assert by_id["VIS-1"].name == "" and by_id["VIS-1"].label == "VIS-1 v1"
    english = ApdsAdapter(base_url=f"{feed_server}/apds-rights", options={"languages": ["en", "de"]})
    assert [spec.name for spec in english.list_right_specifications(place_id="P-OST")] == [
        "Season parking standard",
        "",
    ]


def test_a_specification_that_cannot_be_read_is_refused_alone(feed_server):
    adapter = ApdsAdapter(base_url=f"{feed_server}/apds-rights-broken")

    specs = adapter.list_right_specifications()

    assert [(spec.id, spec.version) for spec in specs] == [("DP-STD-2026", 4)]
    assert [(r.external_id, r.reason) for r in specs.refused] == [
        ("BROKEN-9", "RightSpecification BROKEN-9 has no version (VersionedIdentity requires one)")
    ]


def test_a_cpms_without_right_specifications_says_so(feed_server):
    adapter = ApdsAdapter(base_url=f"{feed_server}/nowhere")

    with pytest.raises(CpmsNotSupported, match="does not publish RightSpecifications"):
        adapter.list_right_specifications()


# --- the mapping page --------------------------------------------------------------------------------
@pytest.fixture
def as_user(client, make_user, login):
    def make(role: str, username: str, carparks=(), on=None):
        return login(on or client, make_user(username, role, carparks=carparks))

    return make


def test_the_mapping_page_lists_products_and_the_published_specifications(
    as_user, client, strict, imported, two_spec_carpark
):
    contract = make_contract(two_spec_carpark)
    standard, premium = published(strict, two_spec_carpark.cpms_reference)
    as_user(ADMINISTRATOR, "admin")

    page = client.get(reverse("connect:connection-right-mappings", args=[imported.pk]))

    text = page.content.decode()
    assert page.status_code == 200
    assert "Season ticket" in text and two_spec_carpark.name in text
    field = f'name="product_{contract.product.pk}"'
    assert field in text
    for spec in (standard, premium):
        assert f'value="{spec["id"]}"' in text
    assert "Dauerparken Premium" in text, "names in the local language first"
    assert 'name="csrfmiddlewaretoken"' in text
    detail = client.get(reverse("connect:connection-detail", args=[imported.pk]))
    assert reverse("connect:connection-right-mappings", args=[imported.pk]).encode() in detail.content


def test_saving_the_mapping_stores_it_audited_and_the_push_uses_it(as_user, client, strict, imported, two_spec_carpark):
    contract = make_contract(two_spec_carpark)
    _, premium = published(strict, two_spec_carpark.cpms_reference)
    admin = as_user(ADMINISTRATOR, "admin")

    response = client.post(
        reverse("connect:connection-right-mappings", args=[imported.pk]),
        {f"product_{contract.product.pk}": premium["id"]},
    )

    assert response.status_code == 302
    mapping = ProductRightMapping.objects.get(connection=imported, product=contract.product)
    assert (mapping.right_specification_id, mapping.right_specification_version) == (premium["id"], premium["version"])
    assert mapping.right_specification_name.startswith("Dauerparken Premium")
    entry = AuditEntry.objects.get(action="connect.right_mappings_changed")
    assert entry.actor == admin and entry.target_id == str(imported.pk)
    assert list(entry.new.values()) == [f"{premium['id']} v{premium['version']}"]
    assert list(entry.old.values()) == [None]
    services.credentials_push(contract=contract)
    assert strict.right(f"phq-credential-{contract.credentials.get().pk}")["rightSpecification"]["id"] == premium["id"]

    client.post(reverse("connect:connection-right-mappings", args=[imported.pk]), {})
    assert not ProductRightMapping.objects.filter(connection=imported).exists(), "“not mapped” removes it"


@pytest.mark.parametrize("role", [SUPERVISOR, MANAGER])
def test_the_mapping_page_is_for_administrators_only(as_user, client, imported, role):
    as_user(role, "someone", carparks=list(CarPark.objects.all()))
    url = reverse("connect:connection-right-mappings", args=[imported.pk])

    assert client.get(url).status_code == 403
    assert client.post(url, {}).status_code == 403


def test_the_mapping_form_needs_its_csrf_token(as_user, strict, imported, one_spec_carpark):
    contract = make_contract(one_spec_carpark)
    [only] = published(strict, one_spec_carpark.cpms_reference)
    browser = Client(enforce_csrf_checks=True)
    as_user(ADMINISTRATOR, "admin", on=browser)

    response = browser.post(
        reverse("connect:connection-right-mappings", args=[imported.pk]), {f"product_{contract.product.pk}": only["id"]}
    )

    assert response.status_code == 403
    assert not ProductRightMapping.objects.exists()


def test_the_mapping_page_says_when_the_cpms_publishes_no_specifications(as_user, client, feed_server):
    connection = CpmsConnection.objects.create(name="Places only", code="placesonly", base_url=f"{feed_server}/x")
    carpark = CarPark.objects.create(name="Nur Orte", code="nur-orte")
    connection.links.create(carpark=carpark, external_id="P-1")
    make_contract(carpark)
    as_user(ADMINISTRATOR, "admin")

    page = client.get(reverse("connect:connection-right-mappings", args=[connection.pk]))

    assert page.status_code == 200
    assert "The CPMS does not publish RightSpecifications" in page.content.decode()
    assert "Season ticket" in page.content.decode()


def test_the_connection_form_keeps_the_oauth_settings_in_the_options(as_user, client, imported):
    as_user(ADMINISTRATOR, "admin")

    response = client.post(
        reverse("connect:connection-edit", args=[imported.pk]),
        {
            "name": "Simulator",
            "code": "sim",
            "kind": "apds",
            "base_url": imported.base_url,
            "timeout_seconds": "5",
            "options": '{"languages": ["de", "en"]}',
            "is_active": "on",
            "secret": "client-s3cret",
            "token_url": "auth",
            "client_id": "phq-portal",
            "scope": "sp",
            "token_auth_basic": "on",
        },
    )

    assert response.status_code == 302
    imported.refresh_from_db()
    assert imported.options == {
        "languages": ["de", "en"],
        "token_url": "auth",
        "client_id": "phq-portal",
        "scope": "sp",
        "token_auth": "basic",
    }
    assert imported.get_secret() == "client-s3cret"
    form = client.get(reverse("connect:connection-edit", args=[imported.pk])).content.decode()
    assert 'name="client_id"' in form and 'value="phq-portal"' in form


# --- the demo ------------------------------------------------------------------------------------------
def test_the_demo_maps_its_products_and_its_pushes_go_through_a_strict_simulator():
    import io

    from connect import demo
    from connect.management.commands.cpms_simulator import adopt_database
    from connect.simulator import start_simulator

    carpark = CarPark.objects.create(name="Demo Mitte", code="demo-mitte", capacity=250, city="Berlin")
    contract = make_contract(carpark, plates=("B-DM 1",))
    demo.load(io.StringIO())
    demo.load(io.StringIO())  # idempotent
    mapping = ProductRightMapping.objects.get(product=contract.product)
    assert mapping.right_specification_id == f"RS-D{contract.product.pk}" and mapping.right_specification_version == 2
    simulator = start_simulator(carparks=0)
    try:
        adopt_database(simulator.state, "simulator")
        requests.post(f"{simulator.url}/_sim/rights", json={"strict": True}, timeout=5)
        connection = CpmsConnection.objects.get(code="simulator")
        CpmsConnection.objects.filter(pk=connection.pk).update(base_url=simulator.url)
        [spec] = requests.get(f"{simulator.url}/rights/specs", timeout=5).json()["data"]
        Credential.objects.filter(contract=contract).update(identifier="BDM2")

        run = services.credentials_push(contract=contract)
        held = requests.get(f"{simulator.url}/rights/assigned/phq-credential-{contract.credentials.get().pk}").json()
        reconciled = services.reconcile(connection=CpmsConnection.objects.get(pk=connection.pk), start_review=False)
    finally:
        simulator.stop()
    assert (spec["id"], spec["version"]) == (mapping.right_specification_id, 2)
    assert (run.status, run.updated) == ("succeeded", 1), "the adopted right (version 1) was updated to version 2"
    assert held["version"] == 2 and held["rightSpecification"]["id"] == mapping.right_specification_id
    assert reconciled.details["differences"] == []
