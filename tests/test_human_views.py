"""Pages an agent reads show data as people read it: no JSON or Python literals, no raw enum values.

On the demo data the Back-office agent walks home, the basket, a task, its process, a contract, a case,
a customer, a car park and the search page. In each page's *visible* text (no attributes, scripts or
styles) there is no dict/list literal (``{"``, ``{'``, ``[{``) and no enum value of any model's choices
whose label differs from it and that cannot be prose: the values made of words joined by ``_``
(``in_progress``, ``Replace_card`` …, in any letter case); a one-word value such as "open" reads as English.

For every demo role the value cells of its pages (td, dd, badges, status marks) are read as well: there a
cell whose whole text is a raw choice value ("open", "paid", "draft") is the value printed instead of its
label, unless the German page shows a German word in its place (translated prose that spells a value).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import lxml.html
import pytest
from django.apps import apps
from django.urls import reverse

from accounts.demo import DEMO_USERS
from tests.test_navigation import menu_links, tab_pages

LITERALS = ('{"', "{'", "[{", "{&quot;", "[&#x27;")


class _Visible(HTMLParser):
    HIDDEN = {"script", "style", "template", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.parts: list[str] = []
        self.forms: list[list[str]] = []  # input names per form

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self.depth += 1
        if tag == "form":
            self.forms.append([])
        if tag in ("input", "select", "textarea") and self.forms:
            values = dict(attrs)
            if values.get("name") and values.get("type") not in ("hidden", "submit"):
                self.forms[-1].append(values["name"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN and self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.parts.append(data)


def parse(html: str) -> _Visible:
    parser = _Visible()
    parser.feed(html)
    return parser


def visible_text(html: str) -> str:
    return " ".join(parse(html).parts)


def raw_enum_values() -> dict[str, str]:
    """value → "app.Model.field" for every choice whose value a person could not read as its label."""
    found: dict[str, str] = {}
    for model in apps.get_models():
        if model.__module__.split(".")[0] not in {"accounts", "carparks", "billing", "connect", "workflows"}:
            continue
        for field in model._meta.get_fields():
            for value, label in getattr(field, "flatchoices", None) or []:
                if not isinstance(value, str) or not value or str(label) == value:
                    continue
                # a single word ("open", "refund") cannot be told from prose; a word_with_underscores can
                if "_" in value and re.fullmatch(r"[a-z][a-z0-9_]+", value):
                    found.setdefault(value, f"{model._meta.label}.{field.name}")
    return found


def _agent_pages(agent: Any) -> list[str]:
    from carparks.models import CarPark, Contract, Customer
    from carparks.selectors import cases_for_user
    from workflows.basket_selectors import basket_tasks
    from workflows.process_views import visible_processes

    carparks = _carparks(agent)
    urls = [reverse("portal-home"), reverse("workflows:basket"), reverse("workflows:process-list")]
    task = basket_tasks(agent, tab="queue").first()
    assert task is not None, "the demo data has a task in the agent's queue"
    urls.append(reverse("workflows:task-detail", args=[task.pk]))
    process = visible_processes(agent).exclude(variables={}).order_by("-pk").first()
    assert process is not None, "the demo data has a process with variables the agent may see"
    urls.append(reverse("workflows:process-detail", args=[process.pk]))
    contract = Contract.objects.filter(product__carpark__in=carparks).order_by("pk").first()
    urls.append(reverse("carparks:contract-detail", args=[contract.pk]))
    urls.append(reverse("carparks:customer-detail", args=[contract.customer_id]))
    case = cases_for_user(agent).order_by("pk").first()
    assert case is not None, "the demo data has a case the agent may see"
    urls.append(reverse("carparks:case-detail", args=[case.pk]))
    urls.append(reverse("carparks:carpark-detail", args=[CarPark.objects.filter(pk__in=carparks).first().pk]))
    urls += [reverse("carparks:customer-list"), reverse("carparks:case-list")]
    name = Customer.objects.filter(contracts__product__carpark__in=carparks).order_by("pk").first().name.split()[-1]
    urls.append(reverse("carparks:search") + "?q=" + name[:4])
    return urls


def _carparks(user: Any) -> set[int]:
    from accounts.roles import responsible_carpark_ids

    return responsible_carpark_ids(user) or set()


@pytest.mark.django_db
def test_an_agents_pages_show_no_literals_and_no_raw_enum_values(demo, client, login, django_user_model):
    agent = django_user_model.objects.get(username="agent")
    login(client, agent)
    enums = raw_enum_values()
    assert "in_progress" in enums  # the check has something to look for
    pattern = re.compile(
        r"(?<![\w-])(" + "|".join(sorted(map(re.escape, enums), key=len, reverse=True)) + r")(?![\w-])"
    )
    problems = []
    for url in _agent_pages(agent):
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        text = visible_text(html)
        problems += [f"{url}: literal {lit!r}" for lit in LITERALS if lit in text]
        problems += [f"{url}: raw value {m!r} ({enums[m.lower()]})" for m in sorted(set(pattern.findall(text)))]
    assert problems == [], "\n".join(problems)


@pytest.mark.django_db
def test_the_basket_has_one_field_per_name(demo, client, login, django_user_model):
    """The top bar's search (q) and the basket's own filter (task_search) cannot be confused."""
    login(client, django_user_model.objects.get(username="agent"))
    forms = parse(client.get(reverse("workflows:basket")).content.decode()).forms
    assert len(forms) >= 2  # the top bar's and the basket's
    seen: dict[str, int] = {}
    for index, names in enumerate(forms):
        for name in set(names):
            assert name not in seen, f"the input {name!r} is in form {seen[name]} and form {index}"
            seen[name] = index
    assert "q" in seen and "task_search" in seen

    # the search's own results page offers its field once (the top bar's would be a second "q")
    search = parse(client.get(reverse("carparks:search") + "?q=x").content.decode()).forms
    assert sum(names.count("q") for names in search) == 1


def test_the_visible_text_leaves_out_attributes_and_scripts():
    html = '<div title="{&quot;a&quot;: 1}" data-x="in_progress">Shown</div><script>var x = {"a": 1}</script>'
    assert visible_text(html).strip() == "Shown"


# --- Table cells, badges and definition values show labels, never a raw choice value --------------

APPS = {"accounts", "carparks", "billing", "connect", "workflows", "monitoring", "notifications"}
# Where a page shows one value of a field: table cells, definition values, badges and status marks.
VALUE_CELLS = (
    "//td | //dd | //*[contains(concat(' ', normalize-space(@class), ' '), ' badge ')]"
    " | //*[contains(concat(' ', normalize-space(@class), ' '), ' status ')]"
    " | //*[starts-with(@id, 'task-state') or contains(@id, '-state')]"
)


def raw_choice_values() -> dict[str, str]:
    """value → "app.Model.field" for every choice value that differs from its label (case-sensitive: "open"
    is not "Open (payment failed)") and that is no label of any choice either."""
    values: dict[str, str] = {}
    labels: set[str] = set()
    for model in apps.get_models():
        if model.__module__.split(".")[0] not in APPS:
            continue
        for field in model._meta.get_fields():
            for value, label in getattr(field, "flatchoices", None) or []:
                labels.add(str(label))
                if isinstance(value, str) and value and str(label) != value:
                    values.setdefault(value, f"{model._meta.label}.{field.name}")
    return {value: where for value, where in values.items() if value not in labels}


# The workflow's own words stay as written: a process variable's stored value, a task's outcome.
WORKFLOW_DATA = "ancestor-or-self::*[@data-variable or contains(concat(' ', @class, ' '), ' task-outcome ')]"


def raw_cells(html: str, values: dict[str, str]) -> dict[str, str]:
    """text → where, for each cell (td, dd, .badge, .status) whose whole text is a raw choice value."""
    if not html.strip():
        return {}
    document = lxml.html.fromstring(html)
    found = {}
    for cell in document.xpath(VALUE_CELLS):
        text = " ".join(cell.text_content().split())
        if text in values and not cell.xpath(WORKFLOW_DATA):
            found[text] = f"<{cell.tag} class={cell.get('class')!r}>{text}</{cell.tag}> ({values[text]})"
    return found


def raw_values_in_cells(html: str, values: dict[str, str], german_html: str | None = None) -> list[str]:
    """The raw choice values shown in value cells. With the same page in German, a word that is German
    there ("overdue" → "überfällig") was a translated word that happens to spell a value, not the value."""
    found = raw_cells(html, values)
    if german_html is not None and found:
        still = raw_cells(german_html, values)
        found = {text: where for text, where in found.items() if text in still}
    return sorted(found.values())


def first_detail_links(html: str, page_url: str, limit: int = 3) -> list[str]:
    """The first link of the first rows of each table of a list page (the details a person opens)."""
    document = lxml.html.fromstring(html)
    links = []
    for table in document.xpath("//table"):
        for row in table.xpath(".//tbody/tr")[:limit]:
            anchors = row.xpath(".//a[@href]")
            if anchors:
                href = anchors[0].get("href")
                if href and not href.startswith(("#", "mailto:", "javascript:")):
                    links.append(urljoin(page_url, href))
    return links


def role_pages(client: Any) -> list[str]:
    """The menu's pages, their tabs, and the first details each of those lists links to."""
    urls = ["/", *[href for href, _active in menu_links(client.get("/").content.decode())]]
    pages = tab_pages(client, urls)
    listed = sorted(set(pages) | {tab for tabs in pages.values() for tab in tabs})
    details: list[str] = []
    for url in listed:
        response = client.get(url)
        if response.status_code == 200 and "html" in response.get("Content-Type", ""):
            details += first_detail_links(response.content.decode(), url)
    downloads = (".pdf", ".xml", ".csv", "/pdf/", "/xml/", "/export/", "/download/")
    details = [url for url in dict.fromkeys(details) if not urlsplit(url).path.endswith(downloads)]
    return listed + [url for url in details if url not in listed]


ROLE_USERS = [(username, role) for username, _first, _last, role in DEMO_USERS]


@pytest.mark.django_db
@pytest.mark.parametrize(("username", "role"), ROLE_USERS, ids=[role for _u, role in ROLE_USERS])
def test_no_cell_or_badge_shows_a_raw_choice_value(demo, client, login, django_user_model, username, role):
    login(client, django_user_model.objects.get(username=username))
    values = raw_choice_values()
    assert {"open", "paid", "draft", "in_progress"} <= set(values)  # the one-word values are looked for too
    problems = []
    checked = 0
    for url in role_pages(client):
        response = client.get(url)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        checked += 1
        html = response.content.decode()
        if raw_cells(html, values):
            german = client.get(url, HTTP_ACCEPT_LANGUAGE="de").content.decode()
            problems += [f"{url}: {cell}" for cell in raw_values_in_cells(html, values, german)]
    assert checked >= 5, f"{role}: only {checked} pages"
    assert problems == [], f"{role}:\n" + "\n".join(problems)


def test_the_cell_checker_tells_a_raw_value_from_its_label():
    values = {"open": "billing.Invoice.state", "in_progress": "carparks.Case.state"}
    html = (
        "<table><tr><td>open</td><td>Open (payment failed)</td><td>Reopen</td></tr></table>"
        '<dl><dd> in_progress </dd></dl><span class="badge text-bg-danger">open</span>'
        "<p>open</p>"  # prose is not a value cell
    )
    found = raw_values_in_cells(html, values)
    assert len(found) == 2 and "in_progress" in found[0] and "open" in found[1]
    assert raw_values_in_cells('<span class="badge">Open</span><td>Paid</td>', values) == []
    # the German page shows "offen": the English "open" was a translated word
    assert raw_values_in_cells("<td>open</td>", values, "<td>offen</td>") == []
    assert raw_values_in_cells("<td>open</td>", values, "<td>open</td>") != []
    # a process variable's stored value and a task's outcome are the workflow's own words
    assert (
        raw_values_in_cells('<tr data-variable="x"><td>open</td></tr><td class="task-outcome">open</td>', values) == []
    )
