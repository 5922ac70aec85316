"""Migrate running processes: choose version N (with running processes) and version M, see per step
where its processes go (automatically, or to the step you choose, or nowhere: they stay), preview,
then migrate. Workflow admins and administrators only."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext, ngettext
from django.views.decorators.http import require_GET, require_http_methods

from accounts.roles import ADMINISTRATOR, WORKFLOW_ADMIN, role_required
from workflows import migration
from workflows.errors import MigrationNotPossible
from workflows.models import WorkflowDefinition, WorkflowVersion

MIGRATORS = (ADMINISTRATOR, WORKFLOW_ADMIN)
LEAVE = ":leave"  # a select's value for "leave them where they are" (no step id has a colon)
RESULT_KEY = "workflows.migration.result"


def _number(raw: str | None) -> int | None:
    try:
        return int(str(raw).strip().lstrip("v"))
    except (TypeError, ValueError):
        return None


def _defaults(
    sources: list[WorkflowVersion], targets: list[WorkflowVersion], data: QueryDict
) -> tuple[int | None, int | None]:
    """The versions asked for, else the oldest version with processes that is not the published one,
    and the published version (else the newest other one)."""
    from_number, to_number = _number(data.get("from")), _number(data.get("to"))
    if from_number is None and sources:
        not_published = [v for v in sources if v.state != WorkflowVersion.State.PUBLISHED]
        from_number = (not_published or sources)[0].number
    if to_number is None:
        others = [v for v in targets if v.number != from_number]
        published = [v for v in others if v.state == WorkflowVersion.State.PUBLISHED]
        to_number = (published or others)[0].number if others else None
    return from_number, to_number


def _choices(rows: list[migration.StepRow], data: QueryDict, version_n: int) -> tuple[list[str], dict, dict]:
    """Per step row the choice posted in ``map-<step id>``: the steps whose processes move, the
    mapping (steps that go elsewhere than their own id) and an error per step left unanswered."""
    step_ids, step_map, errors = [], {}, {}
    for row in rows:
        default = row.automatic.id if row.automatic else ""
        choice = data.get(f"map-{row.step_id}", default).strip()
        row.choice = choice
        if choice == LEAVE:
            continue
        if not choice:
            errors[row.step_id] = ngettext(
                "Choose the step of the new version for the %(count)s process at '%(step)s', "
                "or leave them on version %(number)s.",
                "Choose the step of the new version for the %(count)s processes at '%(step)s', "
                "or leave them on version %(number)s.",
                row.count,
            ) % {"count": row.count, "step": row.name, "number": version_n}
            continue
        step_ids.append(row.step_id)
        if choice != row.step_id:
            step_map[row.step_id] = choice
    return step_ids, step_map, errors


@role_required(*MIGRATORS)
@require_http_methods(["GET", "POST"])
def migrate(request: HttpRequest, key: str) -> HttpResponse:
    definition = get_object_or_404(WorkflowDefinition, key=key)
    data = request.POST if request.method == "POST" else request.GET
    sources = migration.source_versions(definition)
    targets = migration.target_versions(definition)
    from_number, to_number = _defaults(sources, targets, data)
    step_filter = [s for s in data.getlist("step") if s]
    context: dict[str, Any] = {
        "definition": definition,
        "sources": sources,
        "targets": targets,
        "from_number": from_number,
        "to_number": to_number,
        "step_filter": step_filter,
        "leave": LEAVE,
        "rows": [],
        "all_rows": [],
        "errors": {},
        "error": "",
    }
    if not sources or from_number is None or to_number is None:
        return render(request, "workflows/migrate/migrate.html", context)
    try:
        context["all_rows"] = migration.migration_plan(
            definition=definition, from_number=from_number, to_number=to_number
        )
    except MigrationNotPossible as exc:
        context["error"] = str(exc)
        return render(request, "workflows/migrate/migrate.html", context, status=400 if data else 200)
    rows = [r for r in context["all_rows"] if not step_filter or r.step_id in step_filter]
    context["rows"] = rows
    for row in rows:
        row.choice = row.automatic.id if row.automatic else ""
    if request.method != "POST":
        return render(request, "workflows/migrate/migrate.html", context)

    step_ids, step_map, errors = _choices(rows, request.POST, from_number)
    action = request.POST.get("action", "preview")
    context["errors"] = errors
    if action == "edit":  # back from the preview to change the choices
        context["errors"] = {}
        return render(request, "workflows/migrate/migrate.html", context)
    if errors:
        context["error"] = gettext("Nothing was migrated: choose where the processes of the steps marked below go.")
    elif not step_ids:
        context["error"] = gettext(
            "Nothing to migrate: every step is left where it is. Choose a step for at least one."
        )
    if context["error"]:
        return render(request, "workflows/migrate/migrate.html", context, status=400)
    arguments = {
        "definition": definition,
        "from_number": from_number,
        "to_number": to_number,
        "step_ids": step_ids,
        "step_map": step_map,
        "user": request.user,
    }
    if action == "migrate" and request.POST.get("confirm") != "yes":
        context["confirm_error"] = gettext("Tick the box to confirm the migration.")
        action = "preview"
    try:
        report = migration.processes_migrate(**arguments, dry_run=action != "migrate")
    except migration.StepMapInvalid as exc:
        context["errors"] = exc.problems
        context["error"] = gettext("Nothing was migrated: %(reason)s") % {"reason": exc}
        return render(request, "workflows/migrate/migrate.html", context, status=400)
    except MigrationNotPossible as exc:
        context["error"] = gettext("Nothing was migrated: %(reason)s") % {"reason": exc}
        return render(request, "workflows/migrate/migrate.html", context, status=400)
    if action != "migrate":
        context["report"] = report.summary()
        context["hidden"] = [(f"map-{row.step_id}", row.choice) for row in rows]
        return render(request, "workflows/migrate/preview.html", context)
    request.session[RESULT_KEY] = report.summary()
    counts = report.counts()
    text = ngettext(
        "%(count)s process moved to version %(number)s.",
        "%(count)s processes moved to version %(number)s.",
        counts["migrated"],
    ) % {"count": counts["migrated"], "number": to_number}
    if report.not_migrated:
        stayed = gettext("%(count)s stayed on version %(number)s.") % {
            "count": len(report.not_migrated),
            "number": from_number,
        }
        messages.warning(request, f"{text} {stayed}")
    else:
        messages.success(request, text)
    return redirect("workflows:migrate-result", key=definition.key)


@role_required(*MIGRATORS)
@require_GET
def migrate_result(request: HttpRequest, key: str) -> HttpResponse:
    definition = get_object_or_404(WorkflowDefinition, key=key)
    result = request.session.get(RESULT_KEY)
    if not result or result.get("definition_key") != definition.key:
        return redirect(reverse("workflows:migrate", kwargs={"key": definition.key}))
    return render(request, "workflows/migrate/result.html", {"definition": definition, "report": result})
