"""Every portal URL × every role, generated from the URL conf.

Each back-office path falls under the most specific entry of ``POLICY``: the roles that may use
it. Every other role must get 403 (or 404 where the object check runs first, which tells nothing
either), and no role may ever get a server error. A new view is covered the moment it is routed:
it inherits the policy of its section, and the test fails if that is not what the view does.
"""

from __future__ import annotations

import pytest

from accounts import roles
from tests.test_access import PATHS

A, W, S, G, F, C, M = (
    roles.ADMINISTRATOR,
    roles.WORKFLOW_ADMIN,
    roles.SUPERVISOR,
    roles.AGENT,
    roles.FINANCE,
    roles.CARE,
    roles.MANAGER,
)
EVERYONE = {A, W, S, G, F, C, M}

POLICY: dict[str, set[str]] = {
    "/": EVERYONE,
    "/accounts/profile/": EVERYONE,
    "/accounts/two-factor/": EVERYONE,
    "/accounts/audit/": {A},
    "/accounts/users/": {A},
    "/basket/": EVERYONE,  # each sees only the tasks of their roles and car parks
    "/notifications/": EVERYONE,
    "/billing/": {A, F},
    "/billing/dunning/": {A, F, S},  # the dunning overview
    "/carparks/": {A, S, G, F, C, M},
    "/carparks/cases/": {A, S, G, C},
    "/carparks/new/": {A, M},  # add a car park
    "/carparks/1/edit/": {A, M},  # edit a car park (managers of it)
    "/carparks/1/products/new/": {A, M},
    "/carparks/products/1/edit/": {A, M},
    "/carparks/products/1/prices/": {A, M, F},  # a new price, or withdraw a planned one
    "/carparks/customers/1/cases/": {A, S, G, C},
    "/carparks/customers/new/": {A, S, G, C},  # create and edit customers
    "/carparks/customers/1/edit/": {A, S, G, C},
    "/carparks/customers/1/not-a-duplicate/": {A, S, G, C},
    "/carparks/customers/1/merge/": {A, S},
    "/carparks/customers/1/applications/": {A, S, G, C},  # applications taken by staff
    "/carparks/contracts/1/card/": {A, S, G, C},
    "/carparks/contracts/1/plate/": {A, S, G, C},
    "/carparks/contracts/1/stage/": {A, S, G, C},
    "/carparks/contracts/1/vehicles/": {A, S, G, C},
    "/carparks/products/1/quota/": {A, S, M},
    "/connect/": {A, S, M},
    "/connect/new/": {A},
    "/connect/1/edit/": {A},
    "/connect/1/sync/": {A, S},
    "/monitoring/": {A, W, S, F, M},
    "/monitoring/alerts/": {A, W, S, F},
    "/monitoring/alerts/evaluate/": {A, W},
    "/monitoring/alerts/rules/": {A, W},
    "/monitoring/statements/": {A, W, S, F},
    "/monitoring/statements/build/": {A, W},
    "/workflows/definitions/": {A, W, S},
    "/workflows/events/": {A, W, S},
    "/workflows/events/1/": {A, W},
    "/workflows/events/replay-all/": {A, W},
    "/workflows/definitions/1/edit/": {A, W},
    "/workflows/definitions/1/migrate/": {A, W},
    "/workflows/definitions/expression/": {A, W},
    "/workflows/definitions/import/": {A, W},
    "/workflows/definitions/new/": {A, W},
    "/workflows/library/": {A, W},
    "/workflows/processes/": EVERYONE,  # filtered to the car parks a user is responsible for
    "/workflows/processes/1/1/": {A, W},
    "/workflows/start/": EVERYONE,  # lists only what the user may start; a start form answers 403 or 404 otherwise
}


def allowed_roles(path: str) -> set[str]:
    prefix = max((p for p in POLICY if path.startswith(p)), key=len)
    return POLICY[prefix]


def test_the_policy_names_only_routed_sections():
    unused = [prefix for prefix in POLICY if not any(path.startswith(prefix) for path in PATHS)]
    assert not unused, f"policy entries that match no routed path: {unused}"


@pytest.mark.django_db
@pytest.mark.parametrize("role", sorted(EVERYONE))
def test_no_page_leaks_to_a_role_that_should_not_see_it(client, make_user, login, role):
    login(client, make_user(role.lower().replace(" ", "-"), role))
    problems = []
    for path in PATHS:
        status = client.get(path).status_code
        if status >= 500:
            problems.append(f"GET {path} → {status}")
        elif role in allowed_roles(path):
            if status == 403:
                problems.append(f"GET {path} → 403 although {role} may use it")
        elif status not in (403, 404):
            problems.append(f"GET {path} → {status} for {role}, who may not see it")
    assert not problems, "\n".join(problems)
