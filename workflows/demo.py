"""Demo data of the engine: installs every app's shipped workflow definitions (idempotent)."""

from __future__ import annotations

from typing import TextIO


def load(stdout: TextIO) -> None:
    from workflows.sync import sync_definitions

    installed = sync_definitions()
    new = sum(1 for _, _, is_new in installed if is_new)
    stdout.write(f"workflows: {len(installed)} definitions ({new} new versions)\n")
