"""The last English-only texts read in German by a German user: role names (stored as English group names,
shown as translated labels), service errors, and the JavaScript of the workflow editor and the process diagram
(the djangojs catalogue at /jsi18n/). An English user keeps reading English."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from accounts import roles
from accounts.services import user_set_roles
from tests.browser import editor_open
from workflows.authoring import draft_save_bpmn
from workflows.bpmn import definition_to_bpmn
from workflows.errors import DefinitionInvalid
from workflows.models import Timer
from workflows.process_diagram import _timer
from workflows.sync import sync_definitions
from workflows.tests.basket_support import CarParkFactory, install, person, start_review

pytestmark = pytest.mark.django_db

GERMAN = {"HTTP_ACCEPT_LANGUAGE": "de"}
ENGLISH = {"HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture
def groups() -> None:
    for name in roles.ALL_ROLES:
        Group.objects.get_or_create(name=name)


def _badges(html: str) -> list[str]:
    return re.findall(r'<span class="badge text-bg-secondary me-1">([^<]*)</span>', html)


# --- role names -------------------------------------------------------------------------------


def test_every_role_has_a_german_label_and_unknown_groups_keep_their_name() -> None:
    with translation.override("de"):
        labels = {role: roles.role_label(role) for role in roles.ALL_ROLES}
        assert labels[roles.AGENT] == "Sachbearbeitung"
        assert labels[roles.MANAGER] == "Parkhausleitung"
        assert labels[roles.CARE] == "Kundenservice"
        assert labels[roles.FINANCE] == "Finanzen"
        assert roles.role_label("Night shift") == "Night shift"  # a group an administrator added
    with translation.override("en"):
        assert [roles.role_label(role) for role in roles.ALL_ROLES] == roles.ALL_ROLES


def test_the_user_list_and_the_profile_show_role_labels_in_the_readers_language(client, login, make_user, groups):
    admin = login(client, make_user("boss", roles.ADMINISTRATOR))
    make_user("agent1", roles.AGENT, roles.CARE)

    german = client.get(reverse("accounts:user-list"), **GERMAN).content.decode()
    assert "Sachbearbeitung" in _badges(german) and "Kundenservice" in _badges(german)
    assert "Back-office agent" not in _badges(german) and "Customer care" not in _badges(german)
    # the filter's options read German too, while their values stay the stored names
    assert '<option value="Back-office agent">Sachbearbeitung</option>' in german
    assert (
        'value="Back-office agent"'
        in client.get(reverse("accounts:user-edit", args=[admin.pk]), **GERMAN).content.decode()
    )

    english = client.get(reverse("accounts:user-list"), **ENGLISH).content.decode()
    assert "Back-office agent" in _badges(english)

    profile = client.get(reverse("accounts:profile"), **GERMAN).content.decode()
    assert _badges(profile) == ["Administrator"]  # the German label of Administrator is the same word


def test_a_task_page_names_its_role_in_german(client, login, groups):
    install()
    north = CarParkFactory(name="Parkhaus Nord")
    agent = login(client, person("agent1", roles.AGENT, carparks=[north]))
    task = start_review(north)
    assert task.role == roles.AGENT and agent

    page = client.get(reverse("workflows:task-detail", args=[task.pk]), **GERMAN).content.decode()
    assert "· Sachbearbeitung" in page
    assert "mit der Rolle „Sachbearbeitung“" in page
    assert "Back-office agent" not in page.replace('value="Back-office agent"', "")

    listing = client.get(reverse("workflows:basket"), **GERMAN).content.decode()
    assert '<div class="small text-muted">Sachbearbeitung</div>' in listing


def test_the_process_diagrams_timer_label_names_the_role_in_german(groups):
    timer = Timer(step_id="review", kind=Timer.Kind.ESCALATION, data={"to": roles.SUPERVISOR})
    from django.utils import timezone

    timer.due_at = timezone.now()
    with translation.override("de"):
        assert _timer(timer)["label"].startswith("eskaliert an Supervisor ")
    timer.data = {"to": roles.MANAGER}
    with translation.override("de"):
        assert _timer(timer)["label"].startswith("eskaliert an Parkhausleitung ")
    with translation.override("en"):
        assert _timer(timer)["label"].startswith(f"escalates to {roles.MANAGER} ")


# --- service errors ---------------------------------------------------------------------------


def test_a_service_error_reads_german_for_a_german_user(make_user, groups):
    user = make_user("someone")
    with translation.override("de"), pytest.raises(ValueError) as refused:
        user_set_roles(actor=None, user=user, roles=["Night shift"])
    assert str(refused.value) == "Unbekannte Rolle(n): Night shift"
    assert list(user.groups.all()) == []  # nothing changed
    with translation.override("en"), pytest.raises(ValueError, match=r"^Unknown role\(s\): Night shift$"):
        user_set_roles(actor=None, user=user, roles=["Night shift"])


# --- JavaScript -------------------------------------------------------------------------------


def test_the_javascript_catalogue_is_public_and_german_for_a_german_reader():
    german = Client().get(reverse("javascript-catalog"), **GERMAN)
    assert german.status_code == 200
    text = german.content.decode()
    assert "Entwurf v%(version)s gespeichert mit %(problems)s." in text
    assert "Zeitlimit je Versuch" in text
    assert "Entwurf v" not in Client().get(reverse("javascript-catalog"), **ENGLISH).content.decode()


def test_the_pages_with_translated_scripts_load_the_catalogue_before_them_and_others_do_not(
    client, login, make_user, groups
):
    """The catalogue is a synchronous script: on every page it would hold up htmx and Bootstrap (a select
    changed before htmx started sent no request), so only the editor and the process diagram load it."""
    login(client, make_user("boss", roles.ADMINISTRATOR))
    tag = f'<script src="{reverse("javascript-catalog")}"></script>'
    assert tag not in client.get(reverse("portal-home")).content.decode()
    sync_definitions()
    html = client.get(reverse("workflows:editor", args=["season-contract"])).content.decode()
    assert html.index(tag) < html.index("workflows/editor.js")


def _permit(with_default: bool) -> dict:
    decide = {
        "id": "decide",
        "type": "decision",
        "name": "Large amount?",
        "branches": [{"when": "amount > 100", "next": "done"}],
    }
    if with_default:
        decide["default"] = "done"
    else:
        decide["branches"].append({"when": "amount <= 100", "next": "done"})
    return {
        "key": "parking-permit",
        "name": "Parking permit",
        "variables": ["amount"],
        "steps": [
            {"id": "start", "type": "start", "next": "review"},
            {"id": "review", "type": "user", "name": "Review permit", "role": roles.AGENT, "next": "decide"},
            decide,
            {"id": "done", "type": "end", "result": "granted"},
        ],
    }


@pytest.mark.browser
@pytest.mark.slow
def test_the_editor_speaks_german_to_a_german_user(live_server, browser, make_user, groups):
    admin = make_user("wfadmin", roles.WORKFLOW_ADMIN)
    draft = draft_save_bpmn(xml=definition_to_bpmn(_permit(with_default=False)), user=admin).version

    for locale, status, role_option, help_text in (
        (
            "de-DE",
            f"Entwurf v{draft.number} gespeichert mit 1 Fehler, 1 Warnung.",
            "Sachbearbeitung",
            "Alle mit dieser Rolle (bei Einschränkung: zuständig für das Parkhaus)",
        ),
        (
            "en-GB",
            f"Draft v{draft.number} saved with 1 error, 1 warning.",
            "Back-office agent",
            "Everyone with this role (responsible for the car park, if scoped)",
        ),
    ):
        context = browser.new_context(locale=locale, viewport={"width": 1400, "height": 900})
        page = context.new_page()
        try:
            errors = editor_open(page, live_server, admin, "parking-permit")
            assert page.locator("#editor-status").inner_text() == status
            lint = page.locator("#editor-lint").inner_text()
            assert lint == (
                "1 Fehler, 1 Warnung (Fehler verhindern das Veröffentlichen)"
                if locale == "de-DE"
                else "1 error, 1 warning (errors stop publishing)"
            ), lint
            # the role picker of a user task: stored names as values, translated labels as text
            page.evaluate(
                "() => window.phqModeler.get('selection').select("
                "window.phqModeler.get('elementRegistry').get('review'))"
            )
            option = page.locator("select[name=role] option[value='Back-office agent']")
            assert option.inner_text() == role_option
            assert help_text in page.locator("body").inner_text()  # the task's help text
            assert not errors, errors
        finally:
            context.close()


# --- stored texts: alert sentences ----------------------------------------------------------


def test_a_stored_alert_reads_german_for_a_german_user_and_english_for_another(client, login, make_user, groups):
    from monitoring.alert_messages import alert_message
    from monitoring.models import AlertEvent, AlertRule

    rule = AlertRule.objects.create(
        name="Overdue", kind=AlertRule.Kind.OVERDUE_TASKS, role=roles.AGENT, notify_role=roles.SUPERVISOR
    )
    AlertEvent.objects.create(
        rule=rule, key="role:agent", message=alert_message("overdue_tasks", count=3, role=roles.AGENT, limit=2)
    )
    sync = AlertRule.objects.create(name="CPMS", kind=AlertRule.Kind.CPMS_SYNC_FAILED)
    AlertEvent.objects.create(
        rule=sync,
        key="connection:1:occupancy",
        message=alert_message(
            "cpms_sync_failed", kind="occupancy", connection="Simulator", when="2026-03-02T01:06:00+00:00", error="503"
        ),
    )
    AlertEvent.objects.create(rule=sync, key="old", message="An alert stored before, in plain English.")
    login(client, make_user("boss", roles.ADMINISTRATOR))

    german = client.get(reverse("monitoring:alerts"), **GERMAN).content.decode()
    assert "3 Aufgaben der Rolle Sachbearbeitung sind überfällig (Alarm ab mehr als 2)." in german
    assert "Die Synchronisierung „Belegung“ mit Simulator ist am 02 Mär 02:06 fehlgeschlagen: 503" in german
    assert "An alert stored before, in plain English." in german  # an older row stays readable
    assert "tasks of the role" not in german and "{&quot;code" not in german

    english = client.get(reverse("monitoring:alerts"), **ENGLISH).content.decode()
    assert "3 tasks of the role Back-office agent are overdue (alert above 2)." in english
    assert "The occupancy sync with Simulator failed at 02 Mar 02:06: 503" in english
    home = client.get(reverse("monitoring:dashboard"), **GERMAN).content.decode()
    assert "Overdue: 3 Aufgaben der Rolle Sachbearbeitung sind überfällig" in home


def test_an_alert_reaches_each_person_in_their_own_language(make_user, groups, django_capture_on_commit_callbacks):
    from django.core import mail

    from accounts.models import Preference
    from monitoring.alerts import alerts_evaluate
    from monitoring.models import AlertRule
    from notifications.models import Notification

    german = make_user("erika", roles.SUPERVISOR, email="erika@example.com")
    Preference.objects.update_or_create(user=german, defaults={"language": "de"})
    make_user("admin", roles.ADMINISTRATOR, email="admin@example.com")
    AlertRule.objects.create(
        name="No run", kind=AlertRule.Kind.NO_INVOICING_RUN, threshold=0, notify_role=roles.SUPERVISOR, send_email=True
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_evaluate()["opened"] == 1

    bodies = {message.to[0]: message.body for message in mail.outbox}
    assert "Rechnungslauf" in bodies["erika@example.com"] and "invoicing run" not in bodies["erika@example.com"]
    assert "No invoicing run has finished in" in bodies["admin@example.com"]
    notes = {n.user.username: n.body for n in Notification.objects.select_related("user")}
    assert notes["erika"].startswith("Im ") and "Rechnungslauf" in notes["erika"]
    assert notes["admin"].startswith("No invoicing run has finished in")


def test_a_contract_refusal_reads_german_for_a_german_user(groups):
    from carparks.models import Contract
    from carparks.services import TransitionError, contract_activate
    from workflows.tests.basket_support import contract_in

    contract = contract_in(CarParkFactory(name="Parkhaus Süd"))
    state = contract.state
    with translation.override("de"):
        label = str(Contract.State(state).label)  # "Beantragt"
        with pytest.raises(TransitionError) as refused:
            contract_activate(contract=contract)
    assert str(refused.value) == f"Vertrag {contract.pk} ist im Status „{label}“ und kann nicht aktiviert werden."
    assert Contract.objects.get(pk=contract.pk).state == state  # nothing changed
    with translation.override("en"), pytest.raises(TransitionError) as refused:
        contract_activate(contract=contract)
    english = str(Contract.State(state).label).lower()
    assert str(refused.value) == f"Contract {contract.pk} is {english} and cannot be activated."


def test_a_contracts_name_reads_german_for_a_german_user(groups):
    from workflows.tests.basket_support import contract_in

    contract = contract_in(CarParkFactory(name="Parkhaus West"), customer_name="Nora Nord")
    with translation.override("de"):
        assert str(contract) == f"Vertrag {contract.pk} – Nora Nord"
    with translation.override("en"):
        assert str(contract) == f"Contract {contract.pk} – Nora Nord"


# --- stored texts: sync run messages ---------------------------------------------------------


def test_a_sync_runs_messages_read_german_for_a_german_user_and_english_for_another(client, login, make_user, groups):
    from connect.models import CpmsConnection, SyncRun
    from connect.services import _abandoned_runs_close, sync_run_failed

    connection = CpmsConnection.objects.create(name="Simulator", code="sim", base_url="http://127.0.0.1:1/")
    failed = SyncRun.objects.create(
        connection=connection, kind="occupancy", status="running", attempts=1, started_at=timezone.now()
    )
    sync_run_failed(run=failed, error="the CPMS answered 503", final=True)
    stale = SyncRun.objects.create(
        connection=connection, kind="static", status="running", started_at=timezone.now() - timedelta(days=2)
    )
    _abandoned_runs_close(connection, "static", now=timezone.now(), keep=None)
    old = SyncRun.objects.create(
        connection=connection, kind="push", status="failed", errors=["An old message."], started_at=timezone.now()
    )
    stale.refresh_from_db()
    assert failed.errors == ["Attempt 1: the CPMS answered 503"]  # stored in English, as before
    assert stale.errors[-1].startswith("Attempt 0: Abandoned: still running")
    login(client, make_user("boss", roles.ADMINISTRATOR))

    def page(run: SyncRun, headers: dict) -> str:
        return client.get(reverse("connect:run-detail", args=[run.pk]), **headers).content.decode()

    assert "Versuch 1: the CPMS answered 503" in page(failed, GERMAN)  # the CPMS's own words stay
    assert "Versuch 0: Aufgegeben: lief " in page(stale, GERMAN)
    assert "An old message." in page(old, GERMAN)
    assert "Attempt 1: the CPMS answered 503" in page(failed, ENGLISH)
    assert "Attempt 0: Abandoned: still running" in page(stale, ENGLISH)

    from monitoring.alerts import alerts_evaluate
    from monitoring.models import AlertEvent, AlertRule

    AlertRule.objects.create(name="CPMS", kind=AlertRule.Kind.CPMS_SYNC_FAILED, notify_role=roles.ADMINISTRATOR)
    alerts_evaluate()
    with translation.override("de"):
        alert = AlertEvent.objects.get(key__endswith=":occupancy").text
    assert alert.startswith("Die Synchronisierung „Belegung“ mit Simulator ist am "), alert
    assert alert.endswith("fehlgeschlagen: Versuch 1: the CPMS answered 503"), alert

    CpmsConnection.objects.filter(pk=connection.pk).update(status_message="Occupancy succeeded")
    detail = client.get(reverse("connect:connection-detail", args=[connection.pk]), **GERMAN).content.decode()
    assert "Belegung erfolgreich" in detail


def test_the_editors_role_problems_read_german_and_name_the_roles_both_ways(groups):
    from workflows.compiler import role_problems

    spec = _permit(with_default=True)
    spec["steps"][1]["role"] = "Night shift"
    with translation.override("de"):
        [problem] = role_problems(spec)
    text = str(problem.message)
    assert text.startswith("die Rolle „Night shift“ gibt es nicht, ihre Aufgaben gingen also an niemanden (Rollen: ")
    assert "Back-office agent (Sachbearbeitung)" in text  # the name a file uses, and its label
    with translation.override("en"):
        [problem] = role_problems(spec)
    assert str(problem.message).startswith(
        "role “Night shift” does not exist, so its tasks would go to nobody (roles: "
    )
    assert "Back-office agent," in str(problem.message)


def test_an_escalation_notification_names_the_role_in_each_readers_language(groups, django_capture_on_commit_callbacks):
    from accounts.models import Preference
    from notifications.models import Notification
    from workflows.models import Task
    from workflows.signals import task_escalated

    install()
    north = CarParkFactory(name="Parkhaus Nord")
    german = person("leiterin", roles.MANAGER, carparks=[north])
    Preference.objects.update_or_create(user=german, defaults={"language": "de"})
    person("manager", roles.MANAGER, carparks=[north])
    task = start_review(north)
    Task.objects.filter(pk=task.pk).update(role=roles.MANAGER)
    task.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        task_escalated.send(sender=Task, task=task, previous=None, reason="by hand")

    titles = {n.user.username: n.title for n in Notification.objects.select_related("user")}
    assert titles["leiterin"].startswith("Eskaliert an Parkhausleitung"), titles
    assert titles["manager"].startswith(f"Escalated to {roles.MANAGER}"), titles


def test_a_product_error_names_the_field_in_german(groups):
    from carparks.product_services import product_create
    from carparks.services import CarparkError

    carpark = CarParkFactory(name="Parkhaus Ost")
    with translation.override("de"), pytest.raises(CarparkError) as refused:
        product_create(carpark=carpark, name="Dauerparker", monthly_price="12.345", quota=10)
    assert str(refused.value) == "„Monatspreis“ hat höchstens zwei Nachkommastellen."
    with translation.override("en"), pytest.raises(CarparkError) as refused:
        product_create(carpark=carpark, name="Dauerparker", monthly_price="12.345", quota=10)
    assert str(refused.value) == "The monthly price has at most two decimal places."


# --- workflow compiler, conditions and durations ---------------------------------------------------


def _editor_post(client, name: str, spec: dict, headers: dict) -> dict:
    url = reverse(f"workflows:{name}", kwargs={"key": spec["key"]})
    return client.post(url, {"xml": definition_to_bpmn(spec)}, "application/json", **headers).json()


def test_a_publish_refusal_reads_german_then_english_for_the_next_user(client, login, make_user, groups):
    from workflows.compiler import compile_spec
    from workflows.services import definition_install

    definition_install(spec=_permit(with_default=True))
    broken = _permit(with_default=True)
    broken["steps"].insert(3, {"id": "orphan", "type": "user", "name": "Orphan", "role": roles.AGENT, "next": "done"})
    login(client, make_user("wfadmin", roles.WORKFLOW_ADMIN))

    # the same definition, compiled twice in a row: German first, English next (nothing pins a language)
    german = _editor_post(client, "editor-publish", broken, GERMAN)
    assert not german["ok"]
    assert any(e["message"] == "ist vom Start aus nicht erreichbar" for e in german["errors"]), german["errors"]
    english = _editor_post(client, "editor-publish", broken, ENGLISH)
    assert any(e["message"] == "cannot be reached from the start" for e in english["errors"]), english["errors"]
    assert "ist vom Start" not in json.dumps(english)

    no_default = _permit(with_default=True)
    del no_default["steps"][2]["default"]
    with translation.override("de"), pytest.raises(DefinitionInvalid) as refused:
        compile_spec(no_default)
    assert "eine Entscheidung braucht einen 'default'-Zweig" in [p.message for p in refused.value.problems]
    with translation.override("en"), pytest.raises(DefinitionInvalid) as refused:
        compile_spec(no_default)
    assert "a decision needs a 'default' branch" in [p.message for p in refused.value.problems]


def test_a_condition_and_a_duration_error_read_german(client, login, make_user, groups):
    from workflows.durations import parse_duration
    from workflows.errors import ExpressionError
    from workflows.expressions import compile_expression

    login(client, make_user("wfadmin", roles.WORKFLOW_ADMIN))
    url = reverse("workflows:expression-validate")
    xml = definition_to_bpmn(_permit(with_default=True))
    german = client.post(url, {"expression": "amout > 3", "xml": xml}, "application/json", **GERMAN).json()
    assert not german["ok"]
    assert german["error"].startswith("die Bedingung 'amout > 3' verwendet unbekannte Variablen: amout"), german
    english = client.post(url, {"expression": "amout > 3", "xml": xml}, "application/json", **ENGLISH).json()
    assert english["error"].startswith("the condition 'amout > 3' uses unknown variables: amout"), english

    with translation.override("de"), pytest.raises(ExpressionError) as refused:
        compile_expression("   ")
    assert str(refused.value) == "die Bedingung ist leer"
    with translation.override("de"), pytest.raises(ValueError) as refused:
        parse_duration("2 days")
    assert str(refused.value).startswith("'2 days' ist keine ISO-8601-Dauer")


def test_the_bpmn_readers_refusal_reads_german_then_english(client, login, make_user, groups):
    from pathlib import Path

    from workflows.services import definition_install

    definition_install(spec=_permit(with_default=True))
    login(client, make_user("wfadmin", roles.WORKFLOW_ADMIN))
    parallel = (Path(__file__).parent.parent / "workflows/tests/bpmn_files/parallel.bpmn").read_text()
    url = reverse("workflows:editor-check", kwargs={"key": "parking-permit"})
    german = client.post(url, {"xml": parallel}, "application/json", **GERMAN).json()
    messages = [e["message"] for e in german["errors"] if e["element_id"] == "Gateway_split"]
    assert messages and messages[0].startswith("Paralleles Gateway wird nicht unterstützt: diese Engine"), german
    english = client.post(url, {"xml": parallel}, "application/json", **ENGLISH).json()
    messages = [e["message"] for e in english["errors"] if e["element_id"] == "Gateway_split"]
    assert messages[0].startswith("parallel gateway is not supported: this engine runs one step at a time"), english


def test_a_partly_succeeded_connection_status_reads_german_and_is_stored_in_english():
    from connect.sync_messages import partly_text, status_text

    with translation.override("en"):
        stored = partly_text(kind="occupancy", count=3, share=12.5, limit=10)
        assert stored == (
            "Occupancy partly succeeded: 3 records of the feed refused (12.5 %, alert above 10 %); "
            "see the sync run for each id and reason."
        )
        assert status_text(stored) == stored
    with translation.override("de"):
        assert status_text(stored) == (
            "Belegung teilweise erfolgreich: 3 Datensätze des Feeds abgelehnt (12,5 %, Alarm ab mehr als 10 %); "
            "jede ID und den Grund zeigt der Synchronisierungslauf."
        )
        one = status_text(
            "Occupancy partly succeeded: 1 record of the feed refused (0.4 %, alerts on any refusal); "
            "see the sync run for each id and reason."
        )
        assert one.startswith("Belegung teilweise erfolgreich: 1 Datensatz des Feeds abgelehnt (0,4 %, Alarm bei jeder")


def test_a_payment_provider_refusal_reads_german_for_a_german_user():
    from billing import providers

    with translation.override("de"), pytest.raises(providers.ProviderError) as refused:
        providers.provider_for("bank_transfer")
    assert str(refused.value) == "Überweisung auf Rechnung wird nicht über einen Zahlungsdienstleister eingezogen."
    with translation.override("en"), pytest.raises(providers.ProviderError) as refused:
        providers.provider_for("bank_transfer")
    assert str(refused.value) == "Bank transfer on invoice is not collected by a payment provider."


def test_a_refused_bpmn_file_is_explained_in_german():
    from workflows.bpmn import bpmn_to_definition
    from workflows.bpmn._common import BpmnError

    with translation.override("de"), pytest.raises(BpmnError) as refused:
        bpmn_to_definition(b'<?xml version="1.0"?><root xmlns="urn:x"/>')
    assert str(refused.value).startswith("Das ist keine BPMN-2.0-Datei: das Wurzelelement ist <root>")
    with translation.override("de"), pytest.raises(BpmnError) as refused:
        bpmn_to_definition(b"   ")
    assert str(refused.value) == "Die Datei ist leer."
