"""The menu shows exactly what a user may open: every role (and a user without one) on the demo data.

For each demo user the home page's menu is read; every link it shows answers 200 with exactly one active
menu item (its own), and every menu entry it hides refuses the user (403, 404 or the login page) — so the
menu hides nothing that would have worked. The one exception is an entry hidden by its own further test
(``Entry.visible``: "Start process" when nothing may be started): its page then offers nothing.

The tab bars follow the same rule: from each menu page (one tab further), every tab shown answers 200 and
every tab an administrator sees that the role does not see refuses the role.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import lxml.html
import pytest
from django.urls import reverse

from accounts import roles
from accounts.demo import DEMO_USERS
from parkinghq import navigation

MENU = re.compile(r'<ul class="navbar-nav me-auto">(.*?)</ul>', re.S)
LINK = re.compile(r'<a class="nav-link( active)?"[^>]*href="([^"]+)"')


def menu_links(html: str) -> list[tuple[str, bool]]:
    """(href, active) of every link of the main menu."""
    found = MENU.search(html)
    if not found:
        return []
    return [(href, bool(active)) for active, href in LINK.findall(found.group(1))]


def _refused(response: Any) -> bool:
    if response.status_code in (403, 404):
        return True
    return response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))


ROLE_USERS = [(username, role) for username, _first, _last, role in DEMO_USERS]


@pytest.mark.django_db
@pytest.mark.parametrize(("username", "role"), ROLE_USERS, ids=[role for _u, role in ROLE_USERS])
def test_every_menu_link_opens_and_every_hidden_entry_refuses(demo, client, login, django_user_model, username, role):
    user = django_user_model.objects.get(username=username)
    login(client, user)
    home = client.get("/")
    assert home.status_code == 200
    shown = menu_links(home.content.decode())
    assert shown, f"{role} sees no menu"
    assert not any(active for _href, active in shown), "the home page is no menu entry: nothing is active there"

    for href, _active in shown:
        response = client.get(href)
        assert response.status_code == 200, f"{role}: the menu links {href}, which answers {response.status_code}"
        links = menu_links(response.content.decode())
        active = [link for link, is_active in links if is_active]
        assert active == [href], f"{role} on {href}: active menu items {active}"

    shown_urls = {href for href, _active in shown}
    for entry in navigation.ENTRIES:
        url = reverse(entry.urlname)
        if url in shown_urls:
            continue
        response = client.get(url)
        if entry.visible is not None and roles.roles_allow(user, navigation.view_roles(entry.urlname)):
            # Hidden by the entry's own test, not by role: the page lets the user in but has nothing to offer.
            assert response.status_code == 200
            assert not entry.visible(user)
            assert not response.context["rows"], f"{role}: {url} is hidden but offers something"
            continue
        assert _refused(response), f"{role}: {url} is hidden from the menu but answers {response.status_code}"


@pytest.mark.django_db
def test_a_user_without_a_role_sees_no_menu_and_every_entry_refuses(demo, client, make_user):
    client.force_login(make_user("nobody"))
    home = client.get("/")
    assert menu_links(home.content.decode()) == []
    for entry in navigation.ENTRIES:
        assert _refused(client.get(reverse(entry.urlname))), entry.urlname


def test_every_entry_reads_its_roles_from_its_view():
    """The menu reads the roles of each page's role_required: a view without it cannot get into the menu."""
    from billing.views import invoice_list
    from workflows.editor_views import definition_list

    assert navigation.view_roles("billing:invoice-list") == invoice_list.portal_roles == (roles.FINANCE,)
    assert set(navigation.view_roles("workflows:definition-list")) == set(definition_list.portal_roles)
    for entry in navigation.ENTRIES:
        navigation.view_roles(entry.urlname)  # raises NavigationError for an unguarded view


@pytest.mark.django_db
def test_exactly_one_item_is_active_the_longest_prefix(make_user):
    boss = make_user("boss", roles.ADMINISTRATOR)
    # /workflows/processes/ and /workflows/definitions/ share their first characters; only one is active
    items = navigation.menu(boss, reverse("workflows:definition-list") + "some-key/edit/")
    assert [item.urlname for item in items if item.active] == ["workflows:definition-list"]
    assert [item.urlname for item in navigation.menu(boss, "/")] == [item.urlname for item in items]
    assert not any(item.active for item in navigation.menu(boss, "/"))
    assert len(items) >= 10  # an administrator opens every page


# --- Tab bars: a tab shows only when its page lets the user in -----------------------------------

TABS = '//ul[contains(concat(" ", normalize-space(@class), " "), " nav-tabs ")]//a[@href]'


def tab_links(html: str, page_url: str) -> list[str]:
    """The links of every tab bar (``ul.nav-tabs``) of a page, as absolute paths."""
    if not html.strip():
        return []
    document = lxml.html.fromstring(html)
    links = []
    for anchor in document.xpath(TABS):
        href = anchor.get("href")
        if href and not href.startswith("#"):
            links.append(urljoin(page_url, href))
    return links


def tab_pages(client: Any, urls: list[str]) -> dict[str, list[str]]:
    """Each page the menu links (and each page a tab of those leads to) → the tabs it shows."""
    found: dict[str, list[str]] = {}
    queue = list(urls)
    depth = dict.fromkeys(urls, 0)
    while queue:
        url = queue.pop(0)
        if url in found:
            continue
        response = client.get(url)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            found[url] = []
            continue
        found[url] = tab_links(response.content.decode(), url)
        if depth[url] < 1:
            for tab in found[url]:
                if tab not in depth:
                    depth[tab] = depth[url] + 1
                    queue.append(tab)
    return found


_ADMINISTRATOR_TABS: dict[str, list[str]] = {}


@pytest.fixture
def administrator_tabs(demo: None, login: Any, django_user_model: Any) -> dict[str, list[str]]:
    """Every tab of every tab bar, as an administrator (who opens every page) sees them (once a module)."""
    from django.test import Client

    if not _ADMINISTRATOR_TABS:
        client = Client()
        admin = login(client, django_user_model.objects.get(username="admin"))
        _ADMINISTRATOR_TABS.update(tab_pages(client, [item.url for item in navigation.menu(admin, "/")]))
    assert any(_ADMINISTRATOR_TABS.values()), "the administrator sees no tab bar at all"
    return _ADMINISTRATOR_TABS


@pytest.mark.django_db
@pytest.mark.parametrize(("username", "role"), ROLE_USERS, ids=[role for _u, role in ROLE_USERS])
def test_every_tab_shown_opens_and_every_tab_hidden_refuses(
    demo, administrator_tabs, client, login, django_user_model, username, role
):
    user = django_user_model.objects.get(username=username)
    login(client, user)
    menu_urls = [href for href, _active in menu_links(client.get("/").content.decode())]
    pages = tab_pages(client, menu_urls)
    shown = {tab for tabs in pages.values() for tab in tabs}
    for tab in sorted(shown):
        response = client.get(tab)
        assert response.status_code == 200, f"{role}: a tab links {tab}, which answers {response.status_code}"
    for page_url, tabs in pages.items():
        for hidden in set(administrator_tabs.get(page_url, ())) - set(tabs):
            if urlsplit(hidden).path == urlsplit(page_url).path:
                continue  # a view of the same page (the basket's ?tab=team): the page shows what it may
            assert _refused(client.get(hidden)), f"{role}: {page_url} hides the tab {hidden}, which would open"


@pytest.mark.django_db
def test_the_car_park_tabs_follow_each_role(demo, client, login, django_user_model):
    """Finance sees car parks and customers but not the case inbox, which it may not open."""
    login(client, django_user_model.objects.get(username="finance"))
    url = reverse("carparks:customer-list")
    tabs = tab_links(client.get(url).content.decode(), url)
    assert reverse("carparks:customer-list") in tabs
    assert reverse("carparks:case-list") not in tabs
    assert client.get(reverse("carparks:case-list")).status_code == 403
    client.logout()
    login(client, django_user_model.objects.get(username="agent"))
    assert reverse("carparks:case-list") in tab_links(client.get(url).content.decode(), url)
