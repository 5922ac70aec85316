"""Helpers of the browser tests (Playwright driving Debian's Chromium), for every app's tests.

- ``session_cookie(user, live_server)``: a session cookie of ``user`` (two-factor verified) for the live
  server, to add to a page's context instead of logging in through the login page;
- ``editor_open(page, live_server, user, key)``: the workflow editor of the definition ``key`` opened as
  ``user`` and ready to use; returns the list that collects the page's script errors;
- ``progress_watch(page, job, bar=..., label=...)``: runs ``job`` in a thread, as the worker would, and
  collects the values a progress bar shows (with a text next to it) while the job runs.

The fixtures (``browser``, ``page``, ``browser_login``) are in the root ``conftest.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test import Client
from django.urls import reverse

from conftest import verify_two_factor


def session_cookie(user: Any, live_server: Any) -> dict:
    """The session cookie of ``user``, logged in and two-factor verified, for ``live_server``."""
    client = Client()
    client.force_login(user)
    verify_two_factor(client, user)
    return {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}


def editor_open(page: Any, live_server: Any, user: Any, key: str) -> list[str]:
    """Open the workflow editor of the definition ``key`` as ``user`` and wait until it is ready; returns the
    list that collects the page's script errors (empty while there are none)."""
    page.context.add_cookies([session_cookie(user, live_server)])
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}{reverse('workflows:editor', kwargs={'key': key})}")
    page.wait_for_selector("body[data-editor-ready=true]")
    return errors


def progress_watch(
    page: Any,
    job: Callable[[], Any],
    *,
    bar: str,
    label: str,
    timeout: float = 60,
    every_ms: int = 200,
) -> list[tuple[int, str]]:
    """Run ``job`` in a thread (what the worker does with a queued job) and, while it runs, poll the page every
    ``every_ms``: each time the value of the progress bar ``bar`` (a selector; the bar may appear late)
    changes, note it with the text of ``label`` (a selector; "" while it is not shown).

    Returns the ``(value, text)`` pairs seen before the job ended. The job must end within ``timeout``
    seconds (and a minute's grace); an exception of the job is raised here."""
    errors: list[BaseException] = []

    def work() -> None:
        try:
            job()
        except BaseException as exc:  # noqa: BLE001 - raised again in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    progress = page.locator(bar)
    seen: list[tuple[int, str]] = []
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        if progress.count():
            value = int(progress.get_attribute("value") or 0)
            text_el = page.locator(label)
            text = text_el.inner_text() if text_el.count() else ""
            if thread.is_alive() and (not seen or seen[-1][0] != value):
                seen.append((value, text))
        page.wait_for_timeout(every_ms)
    thread.join(timeout=60)
    assert not thread.is_alive(), f"the job was still running {timeout:.0f} s and a minute after it started"
    if errors:
        raise errors[0]
    return seen
