"""Validation names the step; published versions are immutable; versions and migration."""

from __future__ import annotations

import copy

import pytest
from django.db import IntegrityError, transaction

from workflows import services
from workflows.compiler import compile_spec
from workflows.errors import DefinitionInvalid, MigrationNotPossible, VersionImmutable
from workflows.models import Process, WorkflowVersion
from workflows.testing import install_definition

pytestmark = pytest.mark.django_db


def errors_of(spec):
    with pytest.raises(DefinitionInvalid) as err:
        compile_spec(spec)
    return err.value.errors


def test_validation_errors_name_the_step(season_spec):
    spec = copy.deepcopy(season_spec)
    steps = {s["id"]: s for s in spec["steps"]}
    del steps["review"]["role"]
    del steps["check"]["default"]
    steps["activate"]["task"] = "nobody.registered_this"
    steps["check"]["branches"][0]["when"] = "mystery > 1"
    errors = errors_of(spec)
    assert "“Review application” (review): a user task needs a 'role'" in errors
    assert "“Check” (check): a decision needs a 'default' branch" in errors
    assert "“Activate” (activate): system task 'nobody.registered_this' is not registered" in errors
    assert any(e.startswith("“Check” (check): branch 1:") and "unknown variables: mystery" in e for e in errors)


def test_structure_errors_name_the_step(season_spec):
    spec = copy.deepcopy(season_spec)
    spec["steps"].append({"id": "orphan", "type": "end"})
    spec["steps"].append({"id": "start2", "type": "start", "next": "review"})
    assert "the definition needs exactly one start step (found “Start”, “Start2”)" in errors_of(spec)

    spec = copy.deepcopy(season_spec)
    spec["steps"].append({"id": "orphan", "type": "end"})
    assert "“Orphan” (orphan): cannot be reached from the start" in errors_of(spec)

    spec = copy.deepcopy(season_spec)
    spec["steps"][1]["outcomes"]["hold"] = "limbo"
    spec["steps"].append({"id": "limbo", "type": "wait", "duration": "P1D", "next": "limbo"})
    assert "“Limbo” (limbo): no end can be reached from it" in errors_of(spec)

    spec = copy.deepcopy(season_spec)
    spec["steps"][2]["default"] = "loop_a"
    spec["steps"].append({"id": "loop_a", "type": "system", "task": "tests.flaky", "next": "loop_b"})
    spec["steps"].append(
        {
            "id": "loop_b",
            "type": "decision",
            "branches": [{"when": "flaky_done", "next": "activate"}],
            "default": "loop_a",
        }
    )
    assert any("is part of a loop without a user task or wait" in e for e in errors_of(spec))

    spec = copy.deepcopy(season_spec)
    spec["steps"][1]["outcomes"]["approve"] = "nowhere"
    assert "“Review application” (review): leads to unknown step 'nowhere'" in errors_of(spec)

    spec = copy.deepcopy(season_spec)
    spec["steps"][1]["due_in"] = "two days"
    assert any(e.startswith("“Review application” (review): due_in:") for e in errors_of(spec))


def test_a_loop_through_a_user_task_is_allowed(season_spec):
    spec = copy.deepcopy(season_spec)
    spec["steps"][1]["outcomes"]["ask_again"] = "review"
    assert compile_spec(spec)["steps"]["review"]["outcomes"]["ask_again"] == "review"


def test_install_is_idempotent_and_a_published_version_cannot_be_changed(season_spec):
    v1 = install_definition(season_spec)
    assert install_definition(copy.deepcopy(season_spec)).pk == v1.pk
    assert v1.state == WorkflowVersion.State.PUBLISHED
    version = WorkflowVersion.objects.get(pk=v1.pk)
    version.spec = {**version.spec, "name": "Sneaky edit"}
    with pytest.raises(VersionImmutable, match="is published and cannot be changed"):
        version.save()
    assert WorkflowVersion.objects.get(pk=v1.pk).spec["name"] == "Test season contract"
    # Not even a queryset update gets past the database's guard.
    with pytest.raises(IntegrityError, match="cannot be changed"), transaction.atomic():
        WorkflowVersion.objects.filter(pk=v1.pk).update(graph={"steps": {}})
    assert WorkflowVersion.objects.get(pk=v1.pk).graph["start"] == "start"


def test_running_processes_keep_their_version_after_a_new_publish_and_can_be_migrated(season_spec, agent):
    v1 = install_definition(season_spec)
    process = services.process_start(definition_key="test-season")
    spec2 = copy.deepcopy(season_spec)
    spec2["steps"][1]["instructions"] = "Check the ID card too."
    v2 = install_definition(spec2)
    assert v2.number == 2
    v1.refresh_from_db()
    assert v1.state == WorkflowVersion.State.RETIRED
    process.refresh_from_db()
    assert process.version_id == v1.pk
    assert services.process_start(definition_key="test-season").version_id == v2.pk

    services.process_migrate(process=process, to_version=v2)
    process.refresh_from_db()
    assert process.version_id == v2.pk
    assert process.events.filter(kind="process_migrated").exists()

    spec3 = copy.deepcopy(season_spec)
    spec3["steps"][1]["id"] = "triage"
    spec3["steps"][0]["next"] = "triage"
    v3 = install_definition(spec3)
    with pytest.raises(MigrationNotPossible, match="has no step 'review'"):
        services.process_migrate(process=process, to_version=v3)
    assert Process.objects.get(pk=process.pk).version_id == v2.pk
