"""Authoring workflows: drafts saved from the editor, BPMN import/export, publishing, the change summary
between versions and the best-practice library. Every change is audited.

A draft may be saved while it still has validation errors (an admin saves half-done work); the errors
come back naming the step, which the editor marks on the diagram. Publishing validates again and only
a valid draft is published. A refused BPMN file changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from workflows.bpmn import (
    BPMN,
    PHQ,
    BpmnError,
    BpmnImport,
    bpmn_to_definition,
    definition_to_bpmn,
    layout_of,
    parse_xml,
    xml_text,
)
from workflows.compiler import compile_spec, role_problems
from workflows.errors import DefinitionInvalid, DefinitionNotFound, WorkflowError
from workflows.models import WorkflowDefinition, WorkflowVersion
from workflows.services import spec_checksum, version_publish
from workflows.starting import StartRefused

LIBRARY_DIR = Path(__file__).resolve().parent / "library"


def audit(user: Any, action: str, target: Any, old: Any = None, new: Any = None) -> None:
    from accounts.services import audit_record

    audit_record(actor=user, action=action, target=target, old=old, new=new)


def problems_from_errors(errors: list[str] | DefinitionInvalid) -> list[dict[str, str]]:
    """The engine's validation problems, each tied to the diagram element of its step (by the step's id,
    which DefinitionInvalid keeps apart from the text) and naming the step by its name."""
    invalid = errors if isinstance(errors, DefinitionInvalid) else DefinitionInvalid(list(errors))
    return [
        {"element_id": p.element_id, "element_name": p.element_name, "message": p.message} for p in invalid.problems
    ]


def role_warnings(spec: dict[str, Any]) -> list[dict[str, str]]:
    """Roles that do not exist: a draft keeps them (a warning), publishing refuses them."""
    return [
        {"element_id": p.element_id, "element_name": p.element_name, "message": p.message, "severity": "warning"}
        for p in role_problems(spec)
    ]


def problems_from_bpmn(error: BpmnError) -> list[dict[str, str]]:
    return [p.as_dict() for p in error.problems]


def validate_spec(spec: dict[str, Any]) -> list[dict[str, str]]:
    try:
        compile_spec(spec)
    except DefinitionInvalid as exc:
        return [*problems_from_errors(exc), *role_warnings(spec)]
    return role_warnings(spec)


def _is_error(problem: dict[str, str]) -> bool:
    return problem.get("severity", "error") == "error"


# -- checking a diagram as drawn (drafts, live lint) ------------------------------------------------
@dataclass
class DraftCheck:
    """What the editor shows for a diagram: ``errors`` stop publishing, ``warnings`` do not.

    ``spec`` is None when the reader refuses the diagram (an unfinished drawing): such a diagram is still
    saved as a draft, and the reader's reasons are its errors.
    """

    spec: dict[str, Any] | None
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    reader_warnings: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[dict[str, str]]:
        return [*self.errors, *self.warnings]


def _process_of(root: Any) -> Any:
    processes = root.findall(f"{{{BPMN}}}process")
    executable = [p for p in processes if (p.get("isExecutable") or "").strip().lower() in {"true", "1", "yes"}]
    return executable[0] if len(executable) == 1 else (processes[0] if processes else None)


def _local_name(element: Any) -> str:
    tag = element.tag if isinstance(element.tag, str) else ""
    return tag.rsplit("}", 1)[-1]


def check_draft_xml(xml: str | bytes, *, key: str | None = None) -> DraftCheck:
    """Read and validate a diagram the way publishing does, without refusing an unfinished one.

    Raises BpmnError only when the text is no BPMN diagram at all (not XML, no <definitions>, no process):
    then there is nothing the editor could show again.
    """
    root = parse_xml(xml)
    process = _process_of(root) if root.tag == f"{{{BPMN}}}definitions" else None
    try:
        result = bpmn_to_definition(xml, key=key)
    except BpmnError as exc:
        if process is None:
            raise
        check = DraftCheck(None, problems_from_bpmn(exc))
        check.errors += _unread_errors(process, check.errors)
    else:
        problems = validate_spec(result.spec)
        check = DraftCheck(
            result.spec,
            [p for p in problems if _is_error(p)],
            [p for p in problems if not _is_error(p)],
            reader_warnings=result.warnings,
        )
    if process is not None:
        check.warnings += _lint(process)
        names = {e.get("id"): e.get("name") or "" for e in process.iter() if e.get("id")}
        for problem in check.problems:
            if not problem.get("element_name") and problem.get("element_id"):
                problem["element_name"] = names.get(problem["element_id"], "")
    for problem in check.errors:
        problem["severity"] = "error"
    return check


def _unread_errors(process: Any, found: list[dict[str, str]]) -> list[dict[str, str]]:
    """What the engine would refuse that the reader does not look at, when the reader stopped first (the
    engine validates a readable diagram only): a user task without a role."""
    errors = []
    for node in process:
        if _local_name(node) == "userTask" and not (node.get(f"{{{PHQ}}}role") or "").strip():
            element_id = node.get("id", "")
            if not any(p["element_id"] == element_id and "role" in p["message"] for p in found):
                message = gettext("a user task needs a role: choose who does it")
                errors.append({"element_id": element_id, "element_name": node.get("name", ""), "message": message})
    return errors


def _lint(process: Any) -> list[dict[str, str]]:
    """Warnings: what runs but reads badly or never becomes overdue (publishing does not stop on them)."""
    warnings: list[dict[str, str]] = []

    def warn(node: Any, message: str) -> None:
        item = {"element_id": node.get("id", ""), "element_name": node.get("name", ""), "message": message}
        warnings.append({**item, "severity": "warning"})

    flows = process.findall(f"{{{BPMN}}}sequenceFlow")
    due_timers = set()
    for node in process:
        if _local_name(node) != "boundaryEvent" or node.get(f"{{{PHQ}}}escalateTo"):
            continue
        has_timer = node.find(f"{{{BPMN}}}timerEventDefinition") is not None
        if has_timer and not any(f.get("sourceRef") == node.get("id") for f in flows):
            due_timers.add(node.get("attachedToRef", ""))
    for node in process:
        kind = _local_name(node)
        if kind in {"userTask", "serviceTask", "callActivity"} and not (node.get("name") or "").strip():
            warn(node, gettext("the task has no name: people see its id instead"))
        if kind == "userTask" and not node.get(f"{{{PHQ}}}dueIn") and node.get("id") not in due_timers:
            warn(node, gettext("the user task has no due time: it never becomes overdue or escalates"))
    return warnings


@dataclass
class SaveResult:
    version: WorkflowVersion | None
    problems: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    created: bool = False

    @property
    def valid(self) -> bool:
        """No errors (warnings, such as a role that does not exist yet, do not keep a draft from saving)."""
        return not any(p.get("severity", "error") == "error" for p in self.problems)


def current_draft(definition: WorkflowDefinition) -> WorkflowVersion | None:
    """The draft being edited: a draft newer than every published version."""
    latest = definition.versions.order_by("-number").first()
    return latest if latest is not None and latest.state == WorkflowVersion.State.DRAFT else None


def draft_save(*, spec: dict[str, Any], bpmn_xml: str = "", user: Any = None, comment: str = "") -> SaveResult:
    """Save ``spec`` (and the diagram it came from) as the definition's draft; validation errors are returned.

    Updates the current draft in place, or starts a new one after the latest published version.
    Saving unchanged content changes nothing.
    """
    key = str(spec.get("key") or "").strip()
    if not key:
        return SaveResult(
            None, [{"element_id": "", "element_name": "", "message": gettext("the workflow needs a key")}]
        )
    too_long = _over_long_fields(spec)
    if too_long:  # the definition's columns cannot hold them: nothing is written
        return SaveResult(None, too_long)
    problems = validate_spec(spec)
    graph: dict[str, Any] = {}
    if not any(p.get("severity", "error") == "error" for p in problems):
        graph = compile_spec(spec)
    checksum = spec_checksum(spec, bpmn_xml)
    with transaction.atomic():
        definition, _ = WorkflowDefinition.objects.select_for_update().get_or_create(
            key=key, defaults={"name": spec.get("name") or key, "category": spec.get("category") or ""}
        )
        changed = {
            name: spec.get(name) or ""
            for name in ("name", "description", "category")
            if spec.get(name) and getattr(definition, name) != spec.get(name)
        }
        if changed:
            WorkflowDefinition.objects.filter(pk=definition.pk).update(**changed, updated_at=timezone.now())
        draft = current_draft(definition)
        if draft is not None and draft.checksum == checksum:
            return SaveResult(draft, problems)
        latest = definition.versions.order_by("-number").first()
        if latest is not None and latest.state != WorkflowVersion.State.DRAFT and latest.checksum == checksum:
            return SaveResult(latest, problems)  # same as what is published: no new draft
        if draft is None:
            draft = WorkflowVersion.objects.create(
                definition=definition,
                number=(latest.number + 1) if latest else 1,
                spec=spec,
                graph=graph,
                bpmn_xml=bpmn_xml,
                checksum=checksum,
                comment=comment[:300],
                created_by=user if getattr(user, "pk", None) else None,
            )
            audit(user, "workflow.draft_created", draft, new={"number": draft.number, "steps": len(spec["steps"])})
            return SaveResult(draft, problems, created=True)
        old = {"checksum": draft.checksum, "steps": len(draft.spec.get("steps", []))}
        draft.spec, draft.graph, draft.bpmn_xml, draft.checksum = spec, graph, bpmn_xml, checksum
        if comment:
            draft.comment = comment[:300]
        draft.save(update_fields=["spec", "graph", "bpmn_xml", "checksum", "comment"])
        audit(user, "workflow.draft_saved", draft, old=old, new={"checksum": checksum, "steps": len(spec["steps"])})
    return SaveResult(draft, problems)


def _over_long_fields(spec: dict[str, Any]) -> list[dict[str, str]]:
    problems = []
    for name in ("key", "name", "category"):
        value = spec.get(name)
        limit = WorkflowDefinition._meta.get_field(name).max_length
        if isinstance(value, str) and len(value) > limit:
            message = gettext("the workflow %(field)s has %(length)s characters; at most %(limit)s") % {
                "field": name,
                "length": len(value),
                "limit": limit,
            }
            problems.append({"element_id": "", "element_name": "", "message": message})
    return problems


def draft_save_bpmn(
    *, xml: str | bytes, key: str | None = None, user: Any = None, comment: str = "", keep_refused: bool = False
) -> SaveResult:
    """Read a BPMN file and save it as the draft. A refused file raises BpmnError and changes nothing.

    The file may be in any encoding XML allows (UTF-16 from Windows tools, ISO-8859-1); it is stored
    as text whose declaration says UTF-8, the encoding it is exported in.

    With ``keep_refused`` (the editor's Save) a diagram the reader refuses is saved all the same, as drawn:
    see :func:`draft_save_drawing`.
    """
    if keep_refused:
        return draft_save_drawing(xml=xml, key=key, user=user, comment=comment)
    result = bpmn_to_definition(xml, key=key)
    text = xml_text(xml)
    saved = draft_save(spec=result.spec, bpmn_xml=text, user=user, comment=comment)
    saved.warnings = result.warnings
    return saved


def draft_save_drawing(*, xml: str | bytes, key: str | None = None, user: Any = None, comment: str = "") -> SaveResult:
    """Save a diagram as the draft whatever its errors, so no work is lost; only publishing is a gate.

    A diagram the reader refuses (a task without an outgoing flow, an unnamed branch…) is stored as drawn
    (``bpmn_xml``) with a definition without steps: it can never be published or run, and publishing names
    the reader's reasons (:func:`draft_publish`). ``problems`` holds the errors (publishing refuses them) and
    the warnings (``severity``). Raises BpmnError only for text that is no BPMN diagram at all.
    """
    check = check_draft_xml(xml, key=key)
    text = xml_text(xml)
    spec = check.spec if check.spec is not None else _unread_spec(parse_xml(xml), key)
    if not spec.get("key"):
        raise BpmnError(gettext("The process has no id; pass a key for it."))
    saved = draft_save(spec=spec, bpmn_xml=text, user=user, comment=comment)
    if saved.version is not None or check.spec is None:
        saved.problems = check.problems  # the reader's reasons name the element, e.g. an over-long process name
    saved.warnings = check.reader_warnings
    return saved


def _unread_spec(root: Any, key: str | None) -> dict[str, Any]:
    """The definition stored for a diagram the reader refuses: its key and name, no steps (never runs)."""
    process = _process_of(root)
    spec: dict[str, Any] = {"key": key or process.get("id", ""), "steps": []}
    for name, value in (("name", process.get("name")), ("category", process.get(f"{{{PHQ}}}category"))):
        if value and value.strip():
            spec[name] = value.strip()
    return spec


def draft_problems(version: WorkflowVersion) -> list[dict[str, str]]:
    """The errors and warnings of a saved version as the editor marks them, read from its diagram."""
    if version.bpmn_xml:
        try:
            return check_draft_xml(version.bpmn_xml, key=version.definition.key).problems
        except BpmnError as exc:
            return [{**p, "severity": "error"} for p in problems_from_bpmn(exc)]
    return [{**p, "severity": p.get("severity", "error")} for p in validate_spec(version.spec)]


def draft_publish(*, version: WorkflowVersion, user: Any = None) -> SaveResult:
    """Publish a draft when it is valid; otherwise return the problems and leave everything as it was."""
    problems = [p for p in validate_spec(version.spec) if p.get("severity", "error") == "error"]
    if problems and not version.spec.get("steps") and version.bpmn_xml:
        try:  # a diagram saved as drawn: the reader's reasons, on their elements
            bpmn_to_definition(version.bpmn_xml, key=version.definition.key)
        except BpmnError as exc:
            problems = problems_from_bpmn(exc)
    if problems:
        return SaveResult(version, problems)
    if not version.graph:
        version.graph = compile_spec(version.spec)
        version.save(update_fields=["graph"])
    try:
        version = version_publish(version=version, user=user)
    except DefinitionInvalid as exc:
        return SaveResult(version, problems_from_errors(exc))
    except StartRefused as exc:
        start = version.spec["steps"][0]["id"] if version.spec.get("steps") else ""
        start = next((s["id"] for s in version.spec.get("steps", []) if s.get("type") == "start"), start)
        return SaveResult(version, [{"element_id": start, "element_name": "", "message": str(exc)}])
    return SaveResult(version)


@dataclass
class DiscardResult:
    number: int
    definition_removed: bool


def draft_discard(*, definition: WorkflowDefinition, user: Any = None) -> DiscardResult:
    """Throw the definition's draft away; published and retired versions stay as they are.

    A workflow that was never published (the draft is its only version) goes with its draft.
    Raises WorkflowError when there is no draft (another admin discarded or published it).
    """
    with transaction.atomic():
        locked = WorkflowDefinition.objects.select_for_update().get(pk=definition.pk)
        draft = current_draft(locked)
        if draft is None:
            raise WorkflowError(
                gettext("%(name)s has no draft to discard: it may have been published meanwhile.")
                % {"name": locked.name}
            )
        if draft.processes.exists():
            raise WorkflowError(
                gettext("Draft v%(number)s of %(name)s has processes and cannot be discarded.")
                % {"number": draft.number, "name": locked.name}
            )
        number, steps = draft.number, len(draft.spec.get("steps", []))
        audit(user, "workflow.draft_discarded", draft, old={"number": number, "steps": steps})
        draft.delete()
        removed = not locked.versions.exists() and not locked.processes.exists()
        if removed:
            audit(user, "workflow.definition_removed", locked, old={"key": locked.key, "name": locked.name})
            locked.delete()
        else:
            _definition_fields_from(locked, locked.versions.order_by("-number").first())
    return DiscardResult(number, removed)


def _definition_fields_from(definition: WorkflowDefinition, version: WorkflowVersion | None) -> None:
    """Saving a draft renames the definition at once; discarding it brings back the name, description
    and category of the version that is left."""
    if version is None:
        return
    restored = {
        name: version.spec[name]
        for name in ("name", "description", "category")
        if version.spec.get(name) and getattr(definition, name) != version.spec[name]
    }
    if restored:
        WorkflowDefinition.objects.filter(pk=definition.pk).update(**restored, updated_at=timezone.now())


def definition_import(
    *, data: str | bytes, key: str | None = None, user: Any = None, publish: bool = False, comment: str = ""
) -> SaveResult:
    """``workflow_import``: a BPMN file becomes the definition's draft (and is published with ``publish``)."""
    saved = draft_save_bpmn(xml=data, key=key, user=user, comment=comment or "Imported from BPMN")
    if publish and saved.version is not None and saved.valid and saved.version.state == WorkflowVersion.State.DRAFT:
        published = draft_publish(version=saved.version, user=user)
        published.warnings = saved.warnings
        return published
    return saved


def version_for(key: str, number: int | None = None) -> WorkflowVersion:
    try:
        definition = WorkflowDefinition.objects.get(key=key)
    except WorkflowDefinition.DoesNotExist:
        raise DefinitionNotFound(f"No workflow with the key {key!r}.") from None
    versions = definition.versions.order_by("-number")
    if number is not None:
        version = versions.filter(number=number).first()
        if version is None:
            raise DefinitionNotFound(f"{key} has no version {number}.")
        return version
    version = versions.filter(state=WorkflowVersion.State.PUBLISHED).first() or versions.first()
    if version is None:
        raise DefinitionNotFound(f"{key} has no versions yet.")
    return version


def version_bpmn(version: WorkflowVersion) -> str:
    """BPMN 2.0 of a version: the diagram it was saved with, or one laid out from its definition."""
    if version.bpmn_xml:
        try:
            if _same_graph(bpmn_to_definition(version.bpmn_xml).spec, version.spec):
                return version.bpmn_xml
        except BpmnError:
            if version.state == WorkflowVersion.State.DRAFT:
                return version.bpmn_xml  # a draft saved as drawn, before it could be read
    return definition_to_bpmn(version.spec, layout=layout_of(version.bpmn_xml))


def _same_graph(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return comparable(a) == comparable(b)


def comparable(spec: dict[str, Any]) -> dict[str, Any]:
    """A spec in a form two equivalent definitions share: compiled when valid, sorted steps otherwise."""
    try:
        return compile_spec(spec, check_registry=False)
    except (DefinitionInvalid, WorkflowError):
        return {**spec, "steps": sorted(spec.get("steps", []), key=lambda s: str(s.get("id")))}


def version_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Steps added, removed and changed (with the fields that differ) between two definitions."""
    old_steps = {s["id"]: s for s in comparable(old).get("steps", {}).values()} if _compiles(old) else _by_id(old)
    new_steps = {s["id"]: s for s in comparable(new).get("steps", {}).values()} if _compiles(new) else _by_id(new)
    changed = []
    for sid in sorted(set(old_steps) & set(new_steps)):
        fields = sorted(
            k for k in set(old_steps[sid]) | set(new_steps[sid]) if old_steps[sid].get(k) != new_steps[sid].get(k)
        )
        if fields:
            changed.append(
                {
                    "id": sid,
                    "name": new_steps[sid].get("name") or sid,
                    "fields": [
                        {"field": f, "old": _show(old_steps[sid].get(f)), "new": _show(new_steps[sid].get(f))}
                        for f in fields
                    ],
                }
            )
    meta = [
        {"field": k, "old": _show(old.get(k)), "new": _show(new.get(k))}
        for k in ("name", "category", "description")
        if (old.get(k) or "") != (new.get(k) or "")
    ]
    return {
        "added": [new_steps[s] for s in sorted(set(new_steps) - set(old_steps))],
        "removed": [old_steps[s] for s in sorted(set(old_steps) - set(new_steps))],
        "changed": changed,
        "meta": meta,
    }


def _compiles(spec: dict[str, Any]) -> bool:
    try:
        compile_spec(spec, check_registry=False)
    except (DefinitionInvalid, WorkflowError):
        return False
    return True


def _by_id(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(s.get("id")): s for s in spec.get("steps", []) if isinstance(s, dict)}


def _show(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# -- the best-practice library -------------------------------------------------------------------
@dataclass(frozen=True)
class LibraryItem:
    slug: str
    path: Path
    key: str
    name: str
    category: str
    description: str
    steps: int

    def read(self) -> BpmnImport:
        return bpmn_to_definition(self.path.read_bytes())


def library_items() -> list[LibraryItem]:
    items = []
    for path in sorted(LIBRARY_DIR.glob("*.bpmn")):
        result = bpmn_to_definition(path.read_bytes())
        spec = result.spec
        items.append(
            LibraryItem(
                slug=path.stem,
                path=path,
                key=spec["key"],
                name=spec.get("name") or spec["key"],
                category=spec.get("category", ""),
                description=spec.get("description", ""),
                steps=len(spec["steps"]),
            )
        )
    return items


def library_item(slug: str) -> LibraryItem:
    for item in library_items():
        if item.slug == slug:
            return item
    raise DefinitionNotFound(f"The library has no workflow {slug!r}.")


def library_install(*, slug: str, user: Any = None, key: str | None = None) -> SaveResult:
    """Install a library workflow and publish it, so it starts on its business event at once.

    The workflow is saved as a draft first; a valid draft is then published (``draft_publish``). When
    publishing is refused (problems in the draft, or another published workflow already starts on the same
    event with the same condition and priority) the draft stays for the admin to adapt and the result
    carries the problems; the version's state tells which happened.
    """
    item = library_item(slug)
    saved = draft_save_bpmn(
        xml=item.path.read_bytes(), key=key or item.key, user=user, comment=f"Installed from the library ({item.name})"
    )
    if saved.version is None:
        return saved
    audit(user, "workflow.library_installed", saved.version, new={"library": slug, "key": key or item.key})
    if not saved.valid or saved.version.state != WorkflowVersion.State.DRAFT:
        return saved  # not valid yet, or the same content is already published
    published = draft_publish(version=saved.version, user=user)
    published.warnings = [*saved.warnings, *published.warnings]
    published.created = saved.created
    return published
