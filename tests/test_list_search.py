"""A list page's own search box has its own name; the top bar's search (``q``) goes to the global search.

Every list with a search box names it after what it searches (``invoice_search``, ``customer_search`` …):
on the demo data each box filters its list, a bookmarked ``?q=`` of before still does, and the pages'
links (pagination) carry the box's own name. On the demo pages of every role no page renders two inputs
of one name in different forms (the top bar's ``q`` and a list's ``q`` were such a pair). (In Chromium:
tests/test_list_search_browser.py.)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import lxml.html
import pytest
from django.urls import reverse

from accounts.demo import DEMO_USERS
from tests.test_navigation import menu_links, tab_pages


def _invoice_term(obj: Any) -> str:
    return obj.customer.name


# url name, the box's name, the demo user, how a listed object is found by its own text
LISTS = [
    ("workflows:definition-list", "workflow_search", "wfadmin", lambda d: d.name),
    ("workflows:process-list", "process_search", "admin", lambda p: p.title),
    ("billing:invoice-list", "invoice_search", "finance", _invoice_term),
    ("billing:dunning-list", "dunning_search", "finance", _invoice_term),
    ("carparks:customer-list", "customer_search", "admin", lambda c: c.name),
    ("carparks:carpark-list", "carpark_search", "manager", lambda c: c.name),
    ("accounts:audit-log", "audit_search", "admin", lambda e: e.target_repr),
    ("accounts:user-list", "user_search", "admin", lambda u: u.username),
]
NOTHING = "zz-matches-nothing-zz"


def forms_of(html: str) -> list[dict[str, Any]]:
    """Each GET form of a page (search and filter forms): its action, role and the names of its visible
    fields. POST forms are left out: a list may repeat one per row (resolve this exception, claim this
    task), each acting on its own object."""
    document = lxml.html.fromstring(html)
    found = []
    for form in document.xpath("//form"):
        if (form.get("method") or "get").lower() != "get":
            continue
        names = [
            field.get("name")
            for field in form.xpath(".//input|.//select|.//textarea")
            if field.get("name") and field.get("type") not in ("hidden", "submit", "button")
        ]
        found.append({"action": form.get("action"), "role": form.get("role"), "names": names})
    return found


def duplicate_names(html: str) -> list[str]:
    """Field names that more than one form of the page offers."""
    seen: dict[str, int] = {}
    twice = []
    for index, form in enumerate(forms_of(html)):
        for name in set(form["names"]):
            if name in seen and seen[name] != index:
                twice.append(name)
            seen.setdefault(name, index)
    return sorted(set(twice))


def listed(response: Any) -> list[Any]:
    return list(response.context["page"].object_list)


@pytest.mark.django_db
@pytest.mark.parametrize(("urlname", "name", "username", "text_of"), LISTS, ids=[row[1] for row in LISTS])
def test_the_lists_own_box_filters_it_and_a_bookmarked_q_still_does(
    demo, client, login, django_user_model, urlname, name, username, text_of
):
    login(client, django_user_model.objects.get(username=username))
    url = reverse(urlname)
    everything = client.get(url)
    assert everything.status_code == 200
    rows = listed(everything)
    assert rows, f"the demo data lists something on {url}"

    page = lxml.html.fromstring(everything.content.decode())
    box = page.xpath(f'//main//form[@role="search"]//input[@name="{name}"]') or page.xpath(
        f'//form[@role="search"]//input[@name="{name}"]'
    )
    assert box, f"{url} has no search box named {name}"
    label = page.xpath(f'//label[@for="{box[0].get("id")}"]')
    assert label and label[0].text_content().strip(), f"the box {name} has no label"
    assert not page.xpath('//form[not(@action)]//input[@name="q"]'), f"{url}: a form of the page itself sends q"

    term = text_of(rows[-1])
    found = client.get(url, {name: term})
    assert rows[-1] in listed(found), f"{name}={term!r} does not list the row it was taken from"
    shown = lxml.html.fromstring(found.content.decode()).xpath(f'//form[@role="search"]//input[@name="{name}"]')
    assert shown[0].get("value") == term, "the box shows what was searched"

    assert listed(client.get(url, {name: NOTHING})) == []
    assert listed(client.get(url, {"q": NOTHING})) == [], "a bookmarked ?q= no longer filters"
    assert rows[-1] in listed(client.get(url, {"q": term}))
    # the list's own box wins over a q of the top bar
    assert listed(client.get(url, {name: NOTHING, "q": term})) == []


PAGED = [
    ("workflows:process-list", "process_search", "admin", "e"),
    ("billing:invoice-list", "invoice_search", "finance", "e"),
    ("carparks:customer-list", "customer_search", "admin", "e"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("urlname", "name", "username", "term"), PAGED, ids=[row[1] for row in PAGED])
def test_the_next_page_keeps_the_search(demo, client, login, django_user_model, urlname, name, username, term):
    login(client, django_user_model.objects.get(username=username))
    url = reverse(urlname)
    first = client.get(url, {name: term})
    assert first.context["page"].has_next(), f"the demo data fills more than one page of {url} for {term!r}"
    document = lxml.html.fromstring(first.content.decode())
    links = [a.get("href") for a in document.xpath("//ul[contains(@class, 'pagination')]//a[@href]")]
    assert links, f"{url} shows no link to the next page"
    query = parse_qs(urlsplit(urljoin(url, links[-1])).query)
    assert query.get(name) == [term] and "q" not in query, links[-1]
    second = client.get(urljoin(url, links[-1]))
    assert second.context["page"].number == 2
    assert second.context["page"].paginator.count == first.context["page"].paginator.count


@pytest.mark.django_db
def test_the_workflow_list_pages_with_its_search(demo, client, login, django_user_model):
    from workflows.models import WorkflowDefinition

    WorkflowDefinition.objects.bulk_create(
        WorkflowDefinition(key=f"paging-{n:02}", name=f"Paging workflow {n:02}") for n in range(30)
    )
    login(client, django_user_model.objects.get(username="wfadmin"))
    url = reverse("workflows:definition-list")
    first = client.get(url, {"workflow_search": "paging"})
    assert first.context["page"].paginator.count == 30
    document = lxml.html.fromstring(first.content.decode())
    (link,) = document.xpath("//ul[contains(@class, 'pagination')]//a[@href]")
    assert parse_qs(urlsplit(link.get("href")).query) == {"page": ["2"], "workflow_search": ["paging"]}
    assert client.get(urljoin(url, link.get("href"))).context["page"].paginator.count == 30


ROLE_USERS = [(username, role) for username, _first, _last, role in DEMO_USERS]


@pytest.mark.django_db
@pytest.mark.parametrize(("username", "role"), ROLE_USERS, ids=[role for _u, role in ROLE_USERS])
def test_no_page_offers_one_field_name_in_two_forms(demo, client, login, django_user_model, username, role):
    """On every page of the menu (and of its tab bars) each field name belongs to one form only."""
    login(client, django_user_model.objects.get(username=username))
    urls = ["/", *[href for href, _active in menu_links(client.get("/").content.decode())]]
    pages = tab_pages(client, urls)
    urls = sorted(set(pages) | {tab for tabs in pages.values() for tab in tabs})
    problems = []
    checked = 0
    for url in urls:
        response = client.get(url)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        checked += 1
        html = response.content.decode()
        problems += [f"{url}: {name!r} is offered by two forms" for name in duplicate_names(html)]
        top = [form for form in forms_of(html) if form["action"] == reverse("carparks:search")]
        assert len(top) <= 1 or url.startswith(reverse("carparks:search")), url
    assert checked >= 3, f"{role}: only {checked} pages checked"
    assert problems == [], "\n".join(problems)


def test_the_checker_sees_one_name_in_two_forms():
    html = (
        '<form action="/carparks/search/"><input name="q"></form>'
        '<form><input name="q"><input type="hidden" name="page"><select name="state"></select></form>'
        '<form><input type="hidden" name="page"></form>'
        '<form method="post"><input name="state"></form><form method="post"><input name="state"></form>'
    )
    assert duplicate_names(html) == ["q"]
    assert duplicate_names('<form><input name="q"></form><form><input name="invoice_search"></form>') == []
