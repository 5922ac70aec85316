"""Every back-office page, generated from the URL conf: anonymous → login, a user without a role → 403.

New views by any engineer are covered automatically: put the role check (``role_required``) before
anything that could 404 or 405, so an unprivileged user learns nothing about what exists.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

OUR_APPS = {"parkinghq", "accounts", "workflows", "carparks", "billing", "connect", "monitoring", "notifications"}
# Pages every visitor may reach, or that are not portal pages at all.
PUBLIC = re.compile(
    r"^/(accounts/(login|logout|password-reset|reset|locked)|health|favicon\.ico|jsi18n/|api/|static/|media/|django-admin/|__"
    r"|billing/card/|billing/sepa/|billing/stripe/webhook/)"
)
DUMMIES = ["1", "x", str(uuid.UUID(int=1)), "2026-01-01", "x/y"]


def _dummy_for(converter) -> str:
    for value in DUMMIES:
        if re.fullmatch(converter.regex, value):
            try:
                converter.to_python(value)
            except (ValueError, TypeError):
                continue
            return value
    raise AssertionError(f"no dummy value fits URL converter {converter!r}; add one to DUMMIES")


def _route_to_path(pattern: RoutePattern) -> str:
    route = str(pattern)
    for name, converter in pattern.converters.items():
        route = re.sub(rf"<(?:\w+:)?{name}>", _dummy_for(converter), route)
    return route


def _module_of(resolver: URLResolver) -> str:
    urlconf = resolver.urlconf_name
    return urlconf if isinstance(urlconf, str) else getattr(urlconf, "__name__", "")


def back_office_paths() -> list[str]:
    paths: list[str] = []

    def walk(patterns, prefix: str, ours: bool) -> None:
        for entry in patterns:
            if not isinstance(entry.pattern, RoutePattern):
                continue  # regex patterns only come from third-party URL confs (admin, DRF routers)
            path = prefix + _route_to_path(entry.pattern)
            if isinstance(entry, URLResolver):
                module = _module_of(entry)
                walk(entry.url_patterns, path, module.split(".")[0] in OUR_APPS)
            elif isinstance(entry, URLPattern) and ours and not PUBLIC.match(path):
                paths.append(path)

    walk(get_resolver().url_patterns, "/", True)
    return sorted(set(paths))


PATHS = back_office_paths()


def test_the_url_conf_yields_back_office_pages():
    assert "/" in PATHS


@pytest.mark.django_db
@pytest.mark.parametrize("path", PATHS)
def test_it_sends_anonymous_visitors_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302, f"{path} answered {response.status_code} to an anonymous visitor"
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
@pytest.mark.parametrize("path", PATHS)
def test_it_forbids_every_back_office_page_to_a_user_without_a_role(client, django_user_model, path):
    client.force_login(django_user_model.objects.create_user("norole", password="x"))
    response = client.get(path)
    assert response.status_code == 403, f"GET {path} answered {response.status_code} to a user without a role"
    response = client.post(path, {})
    assert response.status_code in (403, 405), f"POST {path} answered {response.status_code} to a role-less user"


@pytest.mark.django_db
@pytest.mark.parametrize("path", [p for p in PATHS if not p.startswith("/accounts/two-factor/")])
def test_it_keeps_an_administrator_without_the_second_factor_out_of_every_page(client, make_user, path):
    from accounts.roles import ADMINISTRATOR

    client.force_login(make_user("halfway", ADMINISTRATOR))  # password step only
    response = client.get(path)
    assert response.status_code == 302, f"GET {path} answered {response.status_code} before the second factor"
    assert response["Location"].startswith("/accounts/two-factor/enrol/")
