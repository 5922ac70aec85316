"""Pages an agent reads show data as people read it: no JSON or Python literals, no raw enum values.

On the demo data the Back-office agent walks home, the basket, a task, its process, a contract, a case,
a customer, a car park and the search page. In each page's *visible* text (no attributes, scripts or
styles) there is no dict/list literal (``{"``, ``{'``, ``[{``) and no enum value of any model's choices
whose label differs from it and that cannot be prose: the values made of words joined by ``_``
(``in_progress``, ``Replace_card`` …, in any letter case); a one-word value such as "open" reads as English.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from io import StringIO
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse

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


@pytest.fixture(scope="module")
def demo(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            call_command("demo_load", stdout=StringIO())
            yield
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


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
