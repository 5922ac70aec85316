"""Pages of the workflow editor: the definition list, versions, the bpmn-js editor and its JSON endpoints,
BPMN import/export, the change summary between two versions, and the best-practice library.

Workflow admins and administrators edit and publish; supervisors may look.
"""

from __future__ import annotations

import json
from typing import Any

from csp.decorators import csp_update
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Max, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import ADMINISTRATOR, ALL_ROLES, SUPERVISOR, WORKFLOW_ADMIN, has_role, role_label, role_required
from parkinghq.list_search import search_term
from parkinghq.posted import has_nul
from workflows import authoring
from workflows.bpmn import MAX_BYTES, BpmnError, bpmn_to_definition, definition_to_bpmn
from workflows.errors import DefinitionNotFound, ExpressionError, WorkflowError
from workflows.models import WorkflowDefinition, WorkflowVersion
from workflows.registry import registered_tasks

EDITORS = (ADMINISTRATOR, WORKFLOW_ADMIN)
READERS = (ADMINISTRATOR, WORKFLOW_ADMIN, SUPERVISOR)
# bpmn-js sets style attributes on the SVG it draws; scripts stay 'self' only.
EDITOR_CSP = {"style-src": ["'unsafe-inline'"]}


def _definition(key: str) -> WorkflowDefinition:
    return get_object_or_404(WorkflowDefinition, key=key)


def _json_body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _nul_refusal(body: dict[str, Any]) -> JsonResponse | None:
    """A 400 for a body PostgreSQL could not store (a NUL character anywhere in it)."""
    if has_nul(body):
        return JsonResponse(
            {"ok": False, "message": "The request must not contain NUL characters.", "errors": []}, status=400
        )
    return None


def _problem(message: str) -> dict[str, str]:
    return {"element_id": "", "element_name": "", "message": message}


# -- lists and versions ------------------------------------------------------------------------------
@role_required(*READERS)
@require_GET
def definition_list(request: HttpRequest) -> HttpResponse:
    query = search_term(request.GET, "workflow_search")
    definitions = WorkflowDefinition.objects.annotate(
        published_number=Max("versions__number", filter=Q(versions__state=WorkflowVersion.State.PUBLISHED)),
        latest_number=Max("versions__number"),
        version_count=Count("versions"),
    ).order_by("category", "name")
    if query:
        definitions = definitions.filter(Q(name__icontains=query) | Q(key__icontains=query))
    page = Paginator(definitions, 25).get_page(request.GET.get("page"))
    return render(
        request,
        "workflows/definition_list.html",
        {"page": page, "query": query, "can_edit": has_role(request.user, *EDITORS)},
    )


@role_required(*READERS)
@require_GET
def definition_detail(request: HttpRequest, key: str) -> HttpResponse:
    definition = _definition(key)
    versions = definition.versions.select_related("created_by").order_by("-number")
    page = Paginator(versions, 20).get_page(request.GET.get("page"))
    return render(
        request,
        "workflows/definition_detail.html",
        {
            "definition": definition,
            "page": page,
            "numbers": list(versions.values_list("number", flat=True)),
            "draft": authoring.current_draft(definition),
            "published": definition.published_version(),
            "start": _start_summary(definition.published_version()),
            "can_edit": has_role(request.user, *EDITORS),
        },
    )


def _start_summary(version: WorkflowVersion | None) -> dict[str, Any] | None:
    """What starts the published version: its business event (and rivals on it) or a manual start."""
    if version is None or not version.graph:
        return None
    from workflows.events import CATALOGUE
    from workflows.starting import START_RULE, bindings_for, start_of

    start = start_of(version.graph)
    if not start.get("event"):
        return {"manual": True, "starters": start.get("starters") or [], "inputs": start.get("inputs") or []}
    event = CATALOGUE.get(start["event"])
    return {
        "manual": False,
        "event": start["event"],
        "title": event.title if event else start["event"],
        "condition": start.get("condition") or "",
        "priority": start.get("priority") or 0,
        "others": [b for b in bindings_for(start["event"]) if b.version_id != version.pk],
        "rule": str(START_RULE),
    }


@role_required(*READERS)
@require_GET
def version_compare(request: HttpRequest, key: str) -> HttpResponse:
    definition = _definition(key)
    try:
        a, b = int(request.GET.get("a", "")), int(request.GET.get("b", ""))
    except ValueError:
        messages.error(request, gettext("Choose two versions to compare."))
        return redirect("workflows:definition-detail", key=key)
    old = get_object_or_404(definition.versions, number=min(a, b))
    new = get_object_or_404(definition.versions, number=max(a, b))
    changes = authoring.version_changes(old.spec, new.spec)
    return render(
        request,
        "workflows/version_compare.html",
        {"definition": definition, "old": old, "new": new, "changes": changes},
    )


@role_required(*READERS)
@require_GET
def version_export(request: HttpRequest, key: str, number: int | None = None) -> HttpResponse:
    try:
        version = authoring.version_for(key, number)
    except DefinitionNotFound as exc:
        raise Http404(str(exc)) from None
    response = HttpResponse(authoring.version_bpmn(version), content_type="application/xml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{key}-v{version.number}.bpmn"'
    return response


# -- the editor --------------------------------------------------------------------------------------
def _editor_config(
    request: HttpRequest, definition: WorkflowDefinition, version: WorkflowVersion | None, mode: str, xml: str
) -> dict[str, Any]:
    key = definition.key

    def url(name: str) -> str:
        return reverse(f"workflows:{name}", kwargs={"key": key})

    from workflows.events import catalogue_for_editor
    from workflows.starting import START_RULE

    problems = authoring.draft_problems(version) if version is not None and mode == "edit" else []
    return {
        "mode": mode,
        "key": key,
        "xml": xml,
        "save_url": url("editor-save"),
        "validate_url": url("editor-validate"),
        "publish_url": url("editor-publish"),
        "check_url": url("editor-check"),
        "expression_url": reverse("workflows:expression-validate"),
        "roles": list(ALL_ROLES),
        "role_labels": {role: role_label(role) for role in ALL_ROLES},
        "always_starters": [ADMINISTRATOR, WORKFLOW_ADMIN],
        "events": catalogue_for_editor(),
        "start_rule": gettext("A condition beats none, then the higher priority wins."),
        "start_rule_full": str(START_RULE),
        "system_tasks": [
            {"name": t.name, "description": t.description, "reads": list(t.reads), "writes": list(t.writes)}
            for t in registered_tasks()
        ],
        "definitions": list(WorkflowDefinition.objects.exclude(pk=definition.pk).values_list("key", flat=True)),
        "problems": problems,
        "draft": version.number if version is not None and version.state == WorkflowVersion.State.DRAFT else None,
        # Live lint after a pause in drawing, autosave after a longer one (milliseconds).
        "lint_ms": getattr(settings, "WORKFLOW_EDITOR_LINT_MS", 600),
        "autosave_ms": getattr(settings, "WORKFLOW_EDITOR_AUTOSAVE_MS", 20000),
    }


@csp_update(EDITOR_CSP)
@role_required(*EDITORS)
@require_GET
def editor(request: HttpRequest, key: str) -> HttpResponse:
    definition = _definition(key)
    draft = authoring.current_draft(definition)
    version = draft or definition.published_version() or definition.versions.order_by("-number").first()
    xml = authoring.version_bpmn(version) if version else ""
    config = _editor_config(request, definition, version, "edit", xml)
    return render(
        request,
        "workflows/editor.html",
        {"definition": definition, "version": version, "draft": draft, "config": config, "read_only": False},
    )


@csp_update(EDITOR_CSP)
@role_required(*READERS)
@require_GET
def version_view(request: HttpRequest, key: str, number: int) -> HttpResponse:
    definition = _definition(key)
    version = get_object_or_404(definition.versions.select_related("created_by"), number=number)
    config = _editor_config(request, definition, version, "view", authoring.version_bpmn(version))
    return render(
        request,
        "workflows/editor.html",
        {
            "definition": definition,
            "version": version,
            "config": config,
            "read_only": True,
            "can_edit": has_role(request.user, *EDITORS),
        },
    )


def _read_posted(request: HttpRequest, key: str) -> tuple[dict[str, Any] | None, str, JsonResponse | None]:
    body = _json_body(request)
    refusal = _nul_refusal(body)
    if refusal is not None:
        return None, "", refusal
    xml = body.get("xml")
    if not isinstance(xml, str) or not xml.strip():
        return None, "", JsonResponse({"ok": False, "message": "No diagram was sent.", "errors": []}, status=400)
    try:
        result = bpmn_to_definition(xml, key=key)
    except BpmnError as exc:
        return (
            None,
            xml,
            JsonResponse(
                {"ok": False, "refused": True, "message": exc.summary, "errors": authoring.problems_from_bpmn(exc)}
            ),
        )
    return {"spec": result.spec, "warnings": result.warnings, "comment": str(body.get("comment") or "")}, xml, None


def _posted_xml(request: HttpRequest) -> tuple[dict[str, Any], str, JsonResponse | None]:
    body = _json_body(request)
    refusal = _nul_refusal(body)
    if refusal is not None:
        return body, "", refusal
    xml = body.get("xml")
    if not isinstance(xml, str) or not xml.strip():
        return body, "", JsonResponse({"ok": False, "message": "No diagram was sent.", "errors": []}, status=400)
    return body, xml, None


def _not_a_diagram(exc: BpmnError) -> JsonResponse:
    """Text that is no BPMN diagram at all (nothing could show it again): refused, nothing saved."""
    errors = [{**p, "severity": "error"} for p in authoring.problems_from_bpmn(exc)]
    message = f"Not saved: this is not a BPMN diagram the editor can keep ({exc.summary})."
    return JsonResponse({"ok": False, "refused": True, "message": message, "errors": errors, "problems": errors})


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _counts(problems: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    errors = [p for p in problems if p.get("severity", "error") == "error"]
    return errors, [p for p in problems if p.get("severity", "error") != "error"]


def _save_answer(saved: authoring.SaveResult, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    errors, warnings = _counts(saved.problems)
    version = saved.version
    return {
        "ok": version is not None,
        "saved": version is not None,
        "valid": version is not None and not errors,
        "errors": errors,
        "problems": [*errors, *warnings],
        "warnings": saved.warnings,
        "version": version.number if version else None,
        **(extra or {}),
    }


@role_required(*EDITORS)
@require_POST
def editor_save(request: HttpRequest, key: str) -> JsonResponse:
    """Save the diagram as the draft whatever its errors (only publishing is a gate)."""
    _definition(key)
    body, xml, refusal = _posted_xml(request)
    if refusal is not None:
        return refusal
    try:
        saved = authoring.draft_save_bpmn(
            xml=xml, key=key, user=request.user, comment=str(body.get("comment") or ""), keep_refused=True
        )
    except BpmnError as exc:
        return _not_a_diagram(exc)
    answer = _save_answer(saved)
    errors, warnings = _counts(saved.problems)
    version = saved.version
    if version is None:
        answer["message"] = f"Not saved: fix the {_plural(len(errors), 'error')} marked first."
    elif version.state != WorkflowVersion.State.DRAFT:
        answer["message"] = f"Nothing changed: this is version {version.number} as published."
    else:
        todo = f"{_plural(len(errors), 'problem')} to fix before publishing" if errors else "valid, can be published"
        note = f" ({_plural(len(warnings), 'warning')})" if warnings else ""
        answer["message"] = f"Draft saved (v{version.number}) \u2014 {todo}{note}"
    return JsonResponse(answer)


@role_required(*EDITORS)
@require_POST
def editor_validate(request: HttpRequest, key: str) -> JsonResponse:
    """Check the diagram as drawn (the editor lints with it as you draw): errors stop publishing, warnings not."""
    _definition(key)
    _, xml, refusal = _posted_xml(request)
    if refusal is not None:
        return refusal
    try:
        check = authoring.check_draft_xml(xml, key=key)
    except BpmnError as exc:
        return _not_a_diagram(exc)
    if check.errors:
        message = _plural(len(check.errors), "error")
        message += f", {_plural(len(check.warnings), 'warning')}" if check.warnings else ""
    else:
        message = "Valid: can be published"
        message += f" ({_plural(len(check.warnings), 'warning')})" if check.warnings else ""
    return JsonResponse(
        {
            "ok": not check.errors,
            "errors": check.errors,
            "problems": check.problems,
            "warnings": check.reader_warnings,
            "message": message,
        }
    )


@role_required(*EDITORS)
@require_POST
def editor_publish(request: HttpRequest, key: str) -> JsonResponse:
    """Save the diagram as the draft, then publish it when it has no errors."""
    definition = _definition(key)
    body, xml, refusal = _posted_xml(request)
    if refusal is not None:
        return refusal
    try:
        saved = authoring.draft_save_bpmn(
            xml=xml, key=key, user=request.user, comment=str(body.get("comment") or ""), keep_refused=True
        )
    except BpmnError as exc:
        return _not_a_diagram(exc)
    errors, _ = _counts(saved.problems)
    if errors or saved.version is None:
        kept = f" The draft is saved (v{saved.version.number})." if saved.version is not None else ""
        message = f"Not published: fix the {_plural(len(errors), 'error')} marked.{kept}"
        return JsonResponse({**_save_answer(saved), "ok": False, "message": message})
    detail = reverse("workflows:definition-detail", kwargs={"key": definition.key})
    if saved.version.state != WorkflowVersion.State.DRAFT:
        message = f"Version {saved.version.number} is already published."
        return JsonResponse(_save_answer(saved, {"message": message, "redirect": detail}))
    published = authoring.draft_publish(version=saved.version, user=request.user)
    if not published.valid:
        refused = [{**p, "severity": "error"} for p in published.problems]
        message = f"Not published: fix the {_plural(len(refused), 'error')} marked. The draft is saved."
        return JsonResponse(
            {**_save_answer(saved), "ok": False, "errors": refused, "problems": refused, "message": message}
        )
    messages.success(
        request,
        gettext("%(name)s: version %(number)s is published.")
        % {"name": definition.name, "number": saved.version.number},
    )
    return JsonResponse(
        _save_answer(
            published, {"message": f"Published as version {saved.version.number}", "redirect": detail, "problems": []}
        )
    )


@role_required(*EDITORS)
@require_POST
def editor_check(request: HttpRequest, key: str) -> JsonResponse:
    """A file opened in the editor: refuse it (with reasons) before it reaches the canvas."""
    _definition(key)
    parsed, xml, refusal = _read_posted(request, key)
    if refusal is not None:
        return refusal
    assert parsed is not None
    return JsonResponse({"ok": True, "xml": xml, "warnings": parsed["warnings"], "errors": []})


@role_required(*EDITORS)
@require_POST
def draft_discard(request: HttpRequest, key: str) -> HttpResponse:
    definition = _definition(key)
    try:
        result = authoring.draft_discard(definition=definition, user=request.user)
    except WorkflowError as exc:
        messages.error(request, str(exc))
        return redirect("workflows:definition-detail", key=key)
    if result.definition_removed:
        messages.success(
            request,
            gettext("%(name)s was never published: its draft and the workflow are removed.")
            % {"name": definition.name},
        )
        return redirect("workflows:definition-list")
    messages.success(
        request,
        gettext("%(name)s: draft v%(number)s is discarded.") % {"name": definition.name, "number": result.number},
    )
    return redirect("workflows:definition-detail", key=key)


@role_required(*EDITORS)
@require_POST
def expression_validate(request: HttpRequest) -> JsonResponse:
    """Live validation of one decision condition against the variables the workflow knows, or (with
    ``event``) of a start condition against the payload fields of that business event."""
    from workflows.compiler import known_variables
    from workflows.expressions import compile_expression

    body = _json_body(request)
    expression = str(body.get("expression") or "")
    if "event" in body:
        error = _start_condition_error(str(body.get("event") or ""), expression)
        return JsonResponse({"ok": not error, "error": error})
    known = None
    xml = body.get("xml")
    if isinstance(xml, str) and xml.strip():
        try:
            known = known_variables(bpmn_to_definition(xml).spec)
        except BpmnError:
            known = None
    try:
        compile_expression(expression, known)
    except ExpressionError as exc:
        return JsonResponse({"ok": False, "error": str(exc)})
    return JsonResponse({"ok": True, "error": ""})


def _start_condition_error(event: str, expression: str) -> str:
    """Why a start condition on ``event`` is wrong ('' when it is fine): it sees only ``event.<field>``."""
    from workflows.compiler import _EVENT_FIELD
    from workflows.events import CATALOGUE
    from workflows.expressions import compile_expression

    event_type = CATALOGUE.get(event)
    if event_type is None:
        return f"'{event}' is not a business event: choose one from the list." if event else "Choose the event first."
    try:
        compile_expression(expression, {"event"})
    except ExpressionError as exc:
        return str(exc)
    missing = sorted(set(_EVENT_FIELD.findall(expression)) - set(event_type.properties))
    if missing:
        return (
            f"{event_type.title} ({event}) has no field {', '.join(f'event.{m}' for m in missing)}; "
            f"its fields: {', '.join(sorted(event_type.properties))}."
        )
    return ""


# -- new, import, library ---------------------------------------------------------------------------
@role_required(*EDITORS)
def definition_new(request: HttpRequest) -> HttpResponse:
    errors: dict[str, str] = {}
    values = {"key": "", "name": ""}
    if request.method == "POST":
        values = {"key": request.POST.get("key", "").strip(), "name": request.POST.get("name", "").strip()}
        longest = {name: WorkflowDefinition._meta.get_field(name).max_length for name in values}
        if not values["key"] or not all(c.isalnum() or c in "-_." for c in values["key"]):
            errors["key"] = gettext("Use letters, digits, '-', '_' or '.'.")
        elif len(values["key"]) > longest["key"]:
            errors["key"] = gettext("Use at most %(most)s characters (this key has %(has)s).") % {
                "most": longest["key"],
                "has": len(values["key"]),
            }
        elif WorkflowDefinition.objects.filter(key=values["key"]).exists():
            errors["key"] = gettext("A workflow with this key exists already.")
        if not values["name"]:
            errors["name"] = gettext("Give the workflow a name.")
        elif "\x00" in values["name"]:
            errors["name"] = gettext("Name must not contain NUL characters.")
        elif len(values["name"]) > longest["name"]:
            errors["name"] = gettext("Use at most %(most)s characters (this name has %(has)s).") % {
                "most": longest["name"],
                "has": len(values["name"]),
            }
        if not errors:
            spec = {
                "key": values["key"],
                "name": values["name"],
                "steps": [{"id": "start", "type": "start", "next": "end"}, {"id": "end", "type": "end"}],
            }
            authoring.draft_save(
                spec=spec, bpmn_xml=definition_to_bpmn(spec), user=request.user, comment="New workflow"
            )
            return redirect("workflows:editor", key=values["key"])
    return render(request, "workflows/definition_new.html", {"errors": errors, "values": values})


@role_required(*EDITORS)
def definition_import(request: HttpRequest) -> HttpResponse:
    problems: list[dict[str, str]] = []
    summary = ""
    key = request.POST.get("key", "").strip() if request.method == "POST" else ""
    if request.method == "POST":
        upload = request.FILES.get("file")
        if upload is None:
            summary = gettext("Choose a BPMN file to import.")
        elif upload.size > MAX_BYTES:
            summary = gettext("The file is larger than %(size)s MB.") % {"size": MAX_BYTES // 1024 // 1024}
        else:
            try:
                saved = authoring.draft_save_bpmn(
                    xml=upload.read(), key=key or None, user=request.user, comment=f"Imported from {upload.name}"[:300]
                )
            except BpmnError as exc:
                summary, problems = exc.summary, authoring.problems_from_bpmn(exc)
            else:
                assert saved.version is not None
                for warning in saved.warnings:
                    messages.warning(request, warning)
                messages.success(
                    request,
                    gettext("Imported %(file)s as version %(number)s (draft).")
                    % {"file": upload.name, "number": saved.version.number},
                )
                return redirect("workflows:editor", key=saved.version.definition.key)
    return render(request, "workflows/definition_import.html", {"problems": problems, "summary": summary, "key": key})


@role_required(*EDITORS)
@require_GET
def library(request: HttpRequest) -> HttpResponse:
    items = authoring.library_items()
    installed = set(WorkflowDefinition.objects.filter(key__in=[i.key for i in items]).values_list("key", flat=True))
    return render(request, "workflows/library.html", {"items": items, "installed": installed})


@role_required(*EDITORS)
@require_POST
def library_install(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        saved = authoring.library_install(slug=slug, user=request.user)
    except DefinitionNotFound as exc:
        raise Http404(str(exc)) from None
    assert saved.version is not None
    version, name = saved.version, saved.version.definition.name
    if saved.problems:
        problems = "; ".join(p["message"] for p in saved.problems)
        messages.warning(
            request,
            gettext("%(name)s is installed as a draft (version %(number)s), not published: %(problems)s")
            % {"name": name, "number": version.number, "problems": problems},
        )
        return redirect("workflows:editor", key=version.definition.key)
    start = next((s for s in version.spec.get("steps", []) if s.get("type") == "start"), {})
    starts = (
        gettext("it now starts on %(event)s") % {"event": start["event"]}
        if start.get("event")
        else gettext("it is started by hand")
    )
    if start.get("condition"):
        starts += " " + gettext("when %(condition)s") % {"condition": start["condition"]}
    messages.success(
        request,
        gettext("%(name)s is installed and published (version %(number)s) — %(starts)s.")
        % {"name": name, "number": version.number, "starts": starts},
    )
    return redirect("workflows:definition-detail", key=version.definition.key)
