"""The monitoring pages: numbers, drill-down, car-park scoping, roles, alert and statement actions."""

from __future__ import annotations

import re
from datetime import date

import pytest
import time_machine
from django.urls import reverse

from monitoring.models import AlertEvent, AlertRule, Statement, StatementSubscription
from monitoring.statements import statement_build

from .conftest import at

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(story, carparks):
    a, b = carparks
    story.full(at("2026-03-02", 9), a)
    story.full(at("2026-03-02", 10), b, rework=True)
    story.start(at("2026-03-03", 9), a)  # review open, overdue from 11:00
    waiting = story.start(at("2026-03-03", 9, 30), b)
    story.claim(waiting, at("2026-03-03", 9, 40))
    return a, b


def number(html: str, element_id: str) -> str:
    match = re.search(rf'data-kpi="{element_id}">([^<]*)<', html)
    assert match, f"no KPI {element_id}"
    return match.group(1).strip()


def drill_count(client, url: str) -> int:
    response = client.get(url.replace("&amp;", "&"))
    assert response.status_code == 200
    return response.context["page"].paginator.count


def test_the_dashboard_shows_live_counts_throughput_and_basket_load(client, login, staff, history):
    login(client, staff["supervisor"])
    with time_machine.travel(at("2026-03-03", 12), tick=False):
        response = client.get(reverse("monitoring:dashboard"), {"period": "7"})
        assert response.status_code == 200
        html = response.content.decode()
        assert number(html, "running") == "2"
        assert number(html, "waiting") == "1"  # the unclaimed review; the other is being worked on
        assert number(html, "overdue") == "2"
        flow = {d["day"]: d for d in response.context["flow"]}
        assert (flow[date(2026, 3, 2)]["started"], flow[date(2026, 3, 2)]["completed"]) == (2, 2)
        assert flow[date(2026, 3, 3)]["started"] == 2
        roles_load = {r["role"]: r for r in response.context["by_role"]}
        assert (roles_load["Back-office agent"]["open"], roles_load["Back-office agent"]["claimed"]) == (1, 1)
        assert response.context["by_person"][0]["name"] == "agent"
        # Chart data travels as JSON in the page (no inline script), next to the tables.
        assert 'id="dashboard-data" type="application/json"' in html
        assert "chart.umd.min.js" in html and "<script>" not in html
        # Every number drills down to exactly the processes behind it.
        for status, expected in [("running", 2), ("waiting", 1), ("overdue", 2)]:
            link = re.search(rf'href="([^"]*status={status}[^"]*)"', html).group(1)
            assert drill_count(client, link) == expected
        running = client.get(reverse("monitoring:processes"), {"period": "7", "status": "running"})
        assert running.context["engine_url"] == reverse("workflows:process-list") + "?state=running"
        started_link = re.search(r'href="([^"]*status=started[^"]*day_from=2026-03-02[^"]*)"', html).group(1)
        assert drill_count(client, started_link) == 2


def test_a_car_park_manager_sees_only_his_car_parks(client, login, staff, history):
    a, b = history
    login(client, staff["manager"])  # responsible for Altstadt only
    with time_machine.travel(at("2026-03-03", 12), tick=False):
        response = client.get(reverse("monitoring:dashboard"), {"period": "7"})
        assert response.status_code == 200
        assert number(response.content.decode(), "running") == "1"
        assert sum(d["started"] for d in response.context["flow"]) == 2
        assert response.context["billing"] is None
        assert drill_count(client, reverse("monitoring:processes") + "?period=7&status=started") == 2
        other = client.get(reverse("monitoring:dashboard"), {"carpark": b.pk})
        assert other.context["scope"].carpark_ids == {a.pk}  # someone else's car park is not a choice
        assert "Select a valid choice" in other.content.decode()


def test_filters_by_workflow_and_period(client, login, staff, history):
    login(client, staff["admin"])
    with time_machine.travel(at("2026-03-03", 12), tick=False):
        response = client.get(
            reverse("monitoring:dashboard"),
            {"period": "custom", "day_from": "2026-03-03", "day_to": "2026-03-03", "workflow": "mon-review"},
        )
        assert [d["started"] for d in response.context["flow"]] == [2]
        bad = client.get(reverse("monitoring:dashboard"), {"period": "custom", "day_from": "2026-03-03"})
        assert bad.status_code == 200
        assert "Give both dates of a custom period." in bad.content.decode()


def test_analytics_heatmap_and_compare_pages(client, login, staff, history, version, spec):
    login(client, staff["supervisor"])
    with time_machine.travel(at("2026-03-04", 12), tick=False):
        response = client.get(reverse("monitoring:analytics"), {"period": "7", "workflow": "mon-review"})
        assert response.status_code == 200
        rows = {r["step"]: r for r in response.context["rows"]}
        assert rows["review"]["entered"] == 5 and rows["review"]["reentered"] == 1
        data = client.get(reverse("monitoring:heatmap-data", args=[version.pk]), {"period": "7"}).json()
        assert data["elements"]["review"]["entered"] == 5
        assert data["elements"]["check"]["entered"] == 2
        page = client.get(reverse("monitoring:heatmap", args=[version.pk]), {"period": "7"})
        assert page.status_code == 200
        assert "bpmn-navigated-viewer.production.min.js" in page.content.decode()
        # A second version to compare with.
        from workflows.testing import install_definition

        spec["steps"][1]["due_in"] = "PT4H"
        install_definition(spec)
        compare = client.get(reverse("monitoring:compare"), {"period": "7", "workflow": "mon-review"})
        assert compare.status_code == 200
        assert compare.context["a"].number == 1 and compare.context["b"].number == 2
        assert compare.context["summary_a"]["started"] == 4 and compare.context["summary_b"]["started"] == 0


def test_alert_pages_list_acknowledge_and_edit_rules(client, login, staff):
    rule = AlertRule.objects.create(name="Incidents", kind=AlertRule.Kind.INCIDENTS)
    event = AlertEvent.objects.create(rule=rule, key="incidents", message="2 processes with an open incident")
    login(client, staff["supervisor"])
    assert "2 processes with an open incident" in client.get(reverse("monitoring:alerts")).content.decode()
    client.post(reverse("monitoring:alert-acknowledge", args=[event.pk]))
    event.refresh_from_db()
    assert event.acknowledged_by == staff["supervisor"]
    assert client.get(reverse("monitoring:rule-create")).status_code == 403  # supervisors read, admins edit

    login(client, staff["admin"])
    response = client.post(
        reverse("monitoring:rule-create"),
        {"name": "Failures", "kind": "card_failure_rate", "threshold": "150", "notify_role": "Finance"},
    )
    assert response.status_code == 200 and "A failure rate is at most 100 %." in response.content.decode()
    response = client.post(
        reverse("monitoring:rule-create"),
        {
            "name": "Failures",
            "kind": "card_failure_rate",
            "threshold": "10",
            "notify_role": "Finance",
            "send_email": "on",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    assert AlertRule.objects.get(name="Failures").created_by == staff["admin"]


def test_a_manager_cannot_see_alerts_or_statements(client, login, staff):
    login(client, staff["manager"])
    assert client.get(reverse("monitoring:alerts")).status_code == 403
    assert client.get(reverse("monitoring:statements")).status_code == 403


def test_subscriptions_and_the_statement_archive(client, login, staff, history):
    login(client, staff["finance"])
    response = client.post(reverse("monitoring:statements"), {"frequencies": ["daily", "monthly"]})
    assert response.status_code == 302
    assert set(StatementSubscription.objects.filter(user=staff["finance"]).values_list("frequency", flat=True)) == {
        "daily",
        "monthly",
    }
    client.post(reverse("monitoring:statements"), {"frequencies": ["monthly"]})
    assert list(StatementSubscription.objects.filter(user=staff["finance"]).values_list("frequency", flat=True)) == [
        "monthly"
    ]
    with time_machine.travel(at("2026-03-09", 7), tick=False):
        statement = statement_build(frequency="weekly", day_from=date(2026, 3, 2), day_to=date(2026, 3, 8))
    archive = client.get(reverse("monitoring:statements"))
    assert statement.period_label in archive.content.decode()
    pdf = client.get(reverse("monitoring:statement-pdf", args=[statement.pk]))
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert "attachment" in pdf["Content-Disposition"]
    detail = client.get(reverse("monitoring:statement-detail", args=[statement.pk]))
    assert 'data-total="started">4<' in detail.content.decode()
    assert Statement.objects.count() == 1


def test_the_demo_loader_is_idempotent(make_user):
    import io

    from monitoring import demo

    make_user("admin", "Administrator")
    demo.load(io.StringIO())
    rules, subs = AlertRule.objects.count(), StatementSubscription.objects.count()
    out = io.StringIO()
    demo.load(out)
    assert (AlertRule.objects.count(), StatementSubscription.objects.count()) == (rules, subs) == (8, 3)
    assert "0 new alert rules, 0 new statement subscriptions" in out.getvalue()
