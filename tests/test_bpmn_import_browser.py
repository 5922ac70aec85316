"""bpmn-js imports every shipped workflow without a warning: the built-in definitions and the library files,
as stored and as exported, opened by the editor's modeler with our phq moddle descriptor in headless Chromium.
A warning means bpmn-js dropped or misread something we wrote (an undeclared attribute, a flow without its
shape, a broken reference), so the diagram an admin edits would not be the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from accounts import roles
from conftest import verify_two_factor
from workflows.authoring import LIBRARY_DIR
from workflows.bpmn import bpmn_to_definition, definition_to_bpmn
from workflows.services import definition_install

pytestmark = [pytest.mark.browser, pytest.mark.slow]

IMPORT_ALL = """async (files) => {
  const modeler = window.phqModeler;
  const found = {};
  for (const [name, xml] of Object.entries(files)) {
    try {
      const result = await modeler.importXML(xml);
      found[name] = result.warnings.map((w) => String(w.message || w));
    } catch (error) {
      found[name] = ['import failed: ' + String(error.message || error)];
    }
  }
  return found;
}"""


def shipped_files() -> dict[str, str]:
    files: dict[str, str] = {}
    for path in sorted(Path(settings.BASE_DIR).glob("*/definitions/*.json")):
        files[f"definition {path.stem}"] = definition_to_bpmn(json.loads(path.read_text()))
    for path in sorted(LIBRARY_DIR.glob("*.bpmn")):
        stored = path.read_text(encoding="utf-8")
        files[f"library {path.stem} (stored)"] = stored
        result = bpmn_to_definition(stored)
        files[f"library {path.stem} (exported)"] = definition_to_bpmn(result.spec, layout=result.layout)
    return files


def test_every_shipped_workflow_imports_into_bpmn_js_without_warnings(live_server, page, make_user):
    for name in roles.ALL_ROLES:
        Group.objects.get_or_create(name=name)
    spec = json.loads((Path(settings.BASE_DIR) / "carparks/definitions/customer-case.json").read_text())
    definition_install(spec=spec)
    admin = make_user("wfadmin", roles.WORKFLOW_ADMIN)
    client = Client()
    client.force_login(admin)
    verify_two_factor(client, admin)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    page.goto(f"{live_server.url}{reverse('workflows:editor', kwargs={'key': spec['key']})}")
    page.wait_for_selector("body[data-editor-ready=true]")
    assert page.evaluate("() => Boolean(window.PHQ_MODDLE && window.phqModeler)")

    files = shipped_files()
    warnings = page.evaluate(IMPORT_ALL, files)

    assert set(warnings) == set(files)
    assert len(files) >= 30  # 8 built-in definitions, 11 library files twice
    with_warnings = {name: found for name, found in warnings.items() if found}
    assert not with_warnings, "bpmn-js import warnings:\n" + "\n".join(
        f"{name}: {message}" for name, found in with_warnings.items() for message in found
    )
    assert script_errors == []
