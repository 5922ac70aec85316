"""The bundled simulator answers as the APDS 4 standard says a CPMS answers.

Every endpoint connect uses is called over HTTP and each body is validated against the JSON Schemas
written by hand from ``apiv4/apds4.yaml`` (``schemas/apds4.schema.json``: places, occupancy, rates,
right specifications; ``schemas/apds4_rights.schema.json``: assigned rights, status bodies, OAuth2).
Beyond the shapes, the simulator behaves as a CPMS: it publishes its own RightSpecification ids,
refuses references to specs it does not publish and stale AssignedRight versions, and logs clients in
with OAuth2 client credentials whose tokens expire.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from connect.simulator import start_simulator

SCHEMAS = Path(__file__).resolve().parent / "schemas"
PLACES = "apds4.schema.json"
RIGHTS = "apds4_rights.schema.json"
# The expand lists connect's APDS adapter sends to GET /places (pull_carparks, pull_occupancy,
# health_check), and the ones a CPMS must answer as well.
PLACE_EXPANDS = [
    "streetAddress,pointLocation,characteristics,contacts",
    "occupancy",
    "none",
    "rightSpecifications",
    "all",
]


def _schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


def _registry() -> Registry:
    resources = [(schema["$id"], Resource.from_contents(schema)) for schema in (_schema(PLACES), _schema(RIGHTS))]
    return Registry().with_resources(resources)


REGISTRY = _registry()


def problems(body: Any, definition: str, schema: str = PLACES) -> list[str]:
    """Why the body is not a valid ``definition`` of the schema file (empty when it is)."""
    validator = Draft202012Validator({"$ref": f"{_schema(schema)['$id']}#/$defs/{definition}"}, registry=REGISTRY)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(body)
    ]


def assert_valid(body: Any, definition: str, schema: str = PLACES) -> None:
    found = problems(body, definition, schema)
    assert not found, f"not a valid APDS {definition}:\n" + "\n".join(found[:20])


@pytest.fixture
def strict(sim) -> Any:
    """The simulator checking assigned rights as a CPMS does (its default, see the test below)."""
    assert sim.control("GET", "state")["strict_rights"] is True
    return sim


@pytest.fixture
def oauth() -> Iterator[Any]:
    """A simulator that lets only its one client in, with tokens or the fixed secret."""
    running = start_simulator(
        carparks=2, seed=3, token="fixed-secret", clients={"parkinghq": "s3cret"}, require_token=True
    )
    try:
        yield running
    finally:
        running.stop()


def get(sim: Any, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{sim.url}/{path}", params=params, timeout=5)


def put_right(sim: Any, right: dict[str, Any]) -> requests.Response:
    return requests.put(f"{sim.url}/rights/assigned/{right['id']}", json=right, timeout=5)


def assigned_right(right_id: str, spec: dict[str, Any], *, plate: str = "M-AB 123", version: int = 1) -> dict[str, Any]:
    return {
        "id": right_id,
        "version": version,
        "rightSpecification": {"id": spec["id"], "version": spec["version"]},
        "rightHolder": {
            "credentials": [
                {
                    "type": "licensePlate",
                    "credentialAssignedType": "vehicle",
                    "identifier": {"id": plate, "className": "LicensePlate"},
                }
            ]
        },
        "issueMethod": "electronic",
        "issuanceTime": "2026-01-01T00:00:00Z",
        "expiry": "2026-12-31T23:59:59Z",
    }


def first_spec(sim: Any, place_id: str = "SIM-0001") -> dict[str, Any]:
    return get(sim, "rights/specs", place=place_id).json()["data"][0]


# --- the schema files ---------------------------------------------------------------------------
def test_the_schema_files_are_valid_json_schemas_and_resolve_across_files():
    for name in (PLACES, RIGHTS):
        Draft202012Validator.check_schema(_schema(name))
    # every $def of the rights file resolves (its $refs into apds4.schema.json included)
    for definition in _schema(RIGHTS)["$defs"]:
        problems({}, definition, RIGHTS)
    assert problems({"id": "R1", "version": 1}, "AssignedRight", RIGHTS) == [
        "<root>: 'rightSpecification' is a required property",
        "<root>: 'rightHolder' is a required property",
    ]


# --- places, occupancy, rates -------------------------------------------------------------------
@pytest.mark.parametrize("expand", PLACE_EXPANDS)
def test_places_validate_with_every_expand(sim, expand):
    body = get(sim, "places", expand=expand).json()

    assert_valid(body, "HierarchyElementList")
    assert body["meta"]["total"] == 5 and len(body["data"]) == 5
    place = sim.running.state.places["SIM-0002"]
    [element] = [element for element in body["data"] if element["id"] == "SIM-0002"]
    assert (element["type"], element["layer"], element["timeZone"]) == ("place", 0, "Europe/Berlin")
    assert element["name"] == [{"language": "de", "string": place["name"]}]
    if "pointLocation" in expand or expand == "all":
        assert element["indicativePlacePointLocation"] == [
            {"type": "Point", "coordinates": [place["longitude"], place["latitude"]]}
        ]
    if "occupancy" in expand or expand == "all":
        [table] = element["hierarchyElementReference"]["demandTable"]
        assert table["demandType"][0]["occupancyCalculation"] == "counted"
        assert element["hierarchyElementReference"]["supply"][0]["supplyQuantity"] == place["capacity"]


def test_one_place_and_a_missing_one_validate(sim):
    sim.set_place("SIM-0003", occupied=12)

    assert_valid(get(sim, "places/SIM-0003").json(), "HierarchyElement")
    assert_valid(get(sim, "places/SIM-0003", expand="occupancy").json(), "Place")
    demand = get(sim, "places/SIM-0003", expand="occupancy").json()["hierarchyElementReference"]["demandTable"]
    assert demand[0]["demandType"][0]["count"] == 12
    missing = get(sim, "places/NOPE")
    assert missing.status_code == 404
    assert_valid(missing.json(), "ErrorStatus", RIGHTS)


def test_rates_validate_and_every_place_has_its_table(sim):
    body = get(sim, "rates", expand="rateLineCollections.rateLines").json()

    assert_valid(body, "RateTableList")
    assert sorted(table["id"] for table in body["data"]) == [f"SIM-000{n}-rate" for n in range(1, 6)]
    line = body["data"][0]["rateLineCollections"][0]["rateLines"][0]
    assert (line["sequence"], line["rateLineType"], line["incrementPeriod"]) == (1, "incrementingRate", "PT1H")


# --- right specifications -----------------------------------------------------------------------
def test_the_simulator_publishes_right_specifications_with_ids_names_and_versions_of_its_own(sim):
    body = get(sim, "rights/specs", expand="rateEligibility").json()

    assert_valid(body, "RightSpecificationList", RIGHTS)
    specs = body["data"]
    assert body["meta"]["total"] == len(specs) == 7  # a standard spec per place, a premium one at every second
    assert all(re.fullmatch(r"RS-\d{4}", spec["id"]) for spec in specs)
    assert not any(spec["id"].startswith("SIM-") or spec["id"].endswith("-season") for spec in specs)
    assert {spec["version"] for spec in specs} == {3}
    standard = first_spec(sim)
    assert standard["description"] == [
        {"language": "de", "string": "Dauerparken Standard"},
        {"language": "en", "string": "Season parking standard"},
    ]
    assert standard["type"] == "permitParking" and "licensePlate" in standard["credentials"]
    premium = [spec for spec in specs if spec["hierarchyElements"][0]["id"] == "SIM-0002"]
    assert [spec["description"][1]["string"] for spec in premium] == [
        "Season parking standard",
        "Season parking premium (reserved space)",
    ]
    rate_ids = {table["id"] for table in get(sim, "rates").json()["data"]}
    eligible = {entry["rateTable"]["id"] for spec in specs for entry in spec["rateEligibility"]}
    assert eligible == rate_ids


def test_one_specification_the_place_filter_and_the_places_references_agree(sim):
    spec = first_spec(sim, "SIM-0002")

    one = get(sim, f"rights/specs/{spec['id']}")
    assert one.status_code == 200
    assert_valid(one.json(), "RightSpecification", RIGHTS)
    assert one.json()["hierarchyElements"] == [{"id": "SIM-0002", "version": 1}]
    filtered = get(sim, "rights/specs", place="SIM-0002").json()
    assert_valid(filtered, "RightSpecificationList", RIGHTS)
    references = get(sim, "places/SIM-0002", expand="rightSpecifications").json()["rightSpecifications"]
    assert references == [{"id": s["id"], "version": s["version"]} for s in filtered["data"]]
    assert len(references) == 2
    missing = get(sim, "rights/specs/SIM-0002-season")
    assert missing.status_code == 404
    assert_valid(missing.json(), "ErrorStatus", RIGHTS)


def test_a_place_added_later_gets_a_published_specification(sim):
    sim.set_place("SIM-0100", name="Neu am Markt", capacity=40)

    specs = get(sim, "rights/specs", place="SIM-0100").json()["data"]
    assert [spec["description"][0]["string"] for spec in specs][0] == "Dauerparken Standard"
    assert all(re.fullmatch(r"RS-\d{4}", spec["id"]) for spec in specs)
    assert all(spec["hierarchyElements"] == [{"id": "SIM-0100", "version": 1}] for spec in specs)


# --- assigned rights ----------------------------------------------------------------------------
def test_assigned_rights_answers_validate_from_create_to_delete(strict):
    spec = first_spec(strict)
    right = assigned_right("phq-credential-1", spec)

    created = put_right(strict, right)
    assert created.status_code == 201
    assert_valid(created.json(), "OkStatus", RIGHTS)
    stored = get(strict, "rights/assigned/phq-credential-1")
    assert_valid(stored.json(), "AssignedRight", RIGHTS)
    assert stored.json() == right
    listed = get(strict, "rights/assigned", place="SIM-0001").json()
    assert_valid(listed, "AssignedRightList", RIGHTS)
    assert [r["id"] for r in listed["data"]] == ["phq-credential-1"]
    assert get(strict, "rights/assigned", place="SIM-0002").json()["data"] == []

    updated = put_right(strict, assigned_right("phq-credential-1", spec, plate="M-CD 456", version=2))
    assert updated.status_code == 200
    assert_valid(updated.json(), "OkStatus", RIGHTS)
    assert get(strict, "rights/assigned/phq-credential-1", version=1).json() == right

    deleted = requests.delete(f"{strict.url}/rights/assigned/phq-credential-1", timeout=5)
    assert deleted.status_code == 200
    assert_valid(deleted.json(), "OkStatus", RIGHTS)
    for gone in (get(strict, "rights/assigned/phq-credential-1"), requests.delete(deleted.url, timeout=5)):
        assert gone.status_code == 404
        assert_valid(gone.json(), "ErrorStatus", RIGHTS)
    assert strict.rights() == []


def test_an_unknown_right_specification_is_refused_naming_the_reference(strict):
    right = assigned_right("phq-credential-2", {"id": "SIM-0001-season", "version": 1})

    refused = put_right(strict, right)

    assert refused.status_code == 400
    assert_valid(refused.json(), "ErrorStatus", RIGHTS)
    assert refused.json()["ids"] == ["SIM-0001-season"]
    assert "'SIM-0001-season' is not published" in refused.json()["message"]
    assert strict.rights() == []
    assert get(strict, "rights/assigned/phq-credential-2").status_code == 404


def test_a_spec_version_never_published_is_refused_and_an_earlier_one_accepted(strict):
    spec = first_spec(strict)

    future = put_right(strict, assigned_right("phq-credential-3", {"id": spec["id"], "version": 4}))

    assert future.status_code == 400
    assert_valid(future.json(), "ErrorStatus", RIGHTS)
    assert future.json()["ids"] == [spec["id"]]
    assert f"version 4 of RightSpecification {spec['id']}, which has no such version" in future.json()["message"]
    assert strict.rights() == []
    # APDS: a VersionedReference may name a version that is no longer the latest
    earlier = put_right(strict, assigned_right("phq-credential-3", {"id": spec["id"], "version": 2}))
    assert earlier.status_code == 201 and strict.rights() == ["phq-credential-3"]


def test_a_stale_version_is_refused_and_the_stored_right_keeps_its_version(strict):
    spec = first_spec(strict)
    assert put_right(strict, assigned_right("phq-credential-4", spec)).status_code == 201

    again = put_right(strict, assigned_right("phq-credential-4", spec, plate="M-XY 9"))

    assert again.status_code == 409
    assert_valid(again.json(), "ErrorStatus", RIGHTS)
    assert again.json()["ids"] == ["phq-credential-4"]
    assert "send version 2" in again.json()["message"]
    held = get(strict, "rights/assigned/phq-credential-4").json()
    assert (held["version"], held["rightHolder"]["credentials"][0]["identifier"]["id"]) == (1, "M-AB 123")

    assert put_right(strict, assigned_right("phq-credential-4", spec, plate="M-XY 9", version=2)).status_code == 200
    assert put_right(strict, assigned_right("phq-credential-4", spec, version=2)).status_code == 409
    held = get(strict, "rights/assigned/phq-credential-4").json()
    assert (held["version"], held["rightHolder"]["credentials"][0]["identifier"]["id"]) == (2, "M-XY 9")


def test_lenient_mode_still_takes_the_legacy_reference_for_old_demo_data(sim):
    sim.control("POST", "rights", {"strict": False})
    legacy = assigned_right("phq-credential-6", {"id": "SIM-0001-season", "version": 1})

    assert put_right(sim, legacy).status_code == 201
    assert put_right(sim, legacy).status_code == 200  # versions are stored as sent
    assert [r["id"] for r in get(sim, "rights/assigned", place="SIM-0001").json()["data"]] == ["phq-credential-6"]
    sim.control("POST", "rights", {"strict": True})
    assert put_right(sim, legacy).status_code == 400


def test_a_right_without_a_version_is_refused_as_missing_attributes(strict):
    right = assigned_right("phq-credential-5", first_spec(strict))
    del right["version"]

    refused = put_right(strict, right)

    assert refused.status_code == 400 and "version" in refused.json()["message"]
    assert strict.rights() == []


# --- OAuth2 client credentials -----------------------------------------------------------------
def token(running: Any, **form: str) -> requests.Response:
    return requests.post(f"{running.url}/auth", data={"grant_type": "client_credentials", **form}, timeout=5)


def test_a_client_gets_a_token_and_reads_places_with_it(oauth):
    issued = token(oauth, client_id="parkinghq", client_secret="s3cret")

    assert issued.status_code == 200 and issued.headers["Cache-Control"] == "no-store"
    assert_valid(issued.json(), "OAuthTokenResponse", RIGHTS)
    assert (issued.json()["token_type"], issued.json()["expires_in"]) == ("Bearer", 3600)
    bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    places = requests.get(f"{oauth.url}/places", headers=bearer, timeout=5)
    assert places.status_code == 200 and places.json()["meta"]["total"] == 2
    basic = requests.post(
        f"{oauth.url}/oauth/token", data={"grant_type": "client_credentials"}, auth=("parkinghq", "s3cret"), timeout=5
    )
    assert basic.status_code == 200 and basic.json()["access_token"] != issued.json()["access_token"]
    fixed = requests.get(f"{oauth.url}/places", headers={"Authorization": "Bearer fixed-secret"}, timeout=5)
    assert fixed.status_code == 200


def test_a_wrong_client_secret_an_unknown_grant_or_token_is_refused(oauth):
    wrong = token(oauth, client_id="parkinghq", client_secret="guess")
    assert wrong.status_code == 401
    assert_valid(wrong.json(), "OAuthErrorResponse", RIGHTS)
    assert wrong.json()["error"] == "invalid_client"
    grant = requests.post(f"{oauth.url}/auth", data={"grant_type": "password"}, timeout=5)
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"

    for header in ({"Authorization": "Bearer made-up"}, {}):
        refused = requests.get(f"{oauth.url}/places", headers=header, timeout=5)
        assert refused.status_code == 401
        assert_valid(refused.json(), "ErrorStatus", RIGHTS)
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_token_is_answered_401(oauth):
    requests.post(f"{oauth.url}/_sim/tokens", json={"expires_in": 1}, timeout=5)
    issued = token(oauth, client_id="parkinghq", client_secret="s3cret").json()
    bearer = {"Authorization": f"Bearer {issued['access_token']}"}
    assert issued["expires_in"] == 1
    assert requests.get(f"{oauth.url}/places", headers=bearer, timeout=5).status_code == 200

    time.sleep(1.1)
    expired = requests.get(f"{oauth.url}/places", headers=bearer, timeout=5)

    assert expired.status_code == 401
    assert_valid(expired.json(), "ErrorStatus", RIGHTS)
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    assert "expired" in expired.json()["message"]
    fresh = token(oauth, client_id="parkinghq", client_secret="s3cret").json()
    again = requests.get(f"{oauth.url}/places", headers={"Authorization": f"Bearer {fresh['access_token']}"}, timeout=5)
    assert again.status_code == 200


def test_an_expired_token_is_refused_even_by_an_open_simulator(sim):
    sim.control("POST", "tokens", {"expires_in": 0})
    issued = token(sim.running, client_id="anyone", client_secret="anything").json()

    expired = requests.get(
        f"{sim.url}/places", headers={"Authorization": f"Bearer {issued['access_token']}"}, timeout=5
    )

    assert expired.status_code == 401
    assert (
        requests.get(f"{sim.url}/places", headers={"Authorization": "Bearer any-token"}, timeout=5).status_code == 200
    )


def test_a_token_without_the_service_provider_scope_cannot_write_assigned_rights(oauth):
    issued = token(oauth, client_id="parkinghq", client_secret="s3cret", scope="ep").json()
    bearer = {"Authorization": f"Bearer {issued['access_token']}"}
    spec = requests.get(f"{oauth.url}/rights/specs", headers=bearer, timeout=5).json()["data"][0]

    refused = requests.put(
        f"{oauth.url}/rights/assigned/R1", json=assigned_right("R1", spec), headers=bearer, timeout=5
    )

    assert issued["scope"] == "ep"
    assert refused.status_code == 403
    assert_valid(refused.json(), "ErrorStatus", RIGHTS)
    assert oauth.state.rights == {}
