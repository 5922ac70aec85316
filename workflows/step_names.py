"""Names, not ids, where a person reads: the name of a step as its process's version defines it.

A step's name comes from the version's compiled graph (one lookup per version, never one per row); a
step without a name reads as its id in words (``Activity_009j129`` → ``Activity 009j129``).
"""

from __future__ import annotations

from typing import Any

from workflows.compiler import step_label, step_names

__all__ = ["StepNames", "step_label"]


class StepNames:
    """Step names per version for one page: each version's graph is read once (from a version already
    loaded with the rows, else from the engine's in-process cache of compiled graphs)."""

    def __init__(self) -> None:
        self._by_version: dict[int, dict[str, str]] = {}

    def of_version(self, version_id: int | None, graph: dict[str, Any] | None = None) -> dict[str, str]:
        if version_id is None:
            return {}
        names = self._by_version.get(version_id)
        if names is None:
            if graph is None:
                from workflows.compiler import graph_for_version

                graph = graph_for_version(version_id).data
            names = self._by_version[version_id] = step_names(graph or {})
        return names

    def name(self, version_id: int | None, step_id: str, graph: dict[str, Any] | None = None) -> str:
        """The step's name, ``""`` for no step."""
        if not step_id:
            return ""
        return self.of_version(version_id, graph).get(step_id) or step_label(step_id)

    def of_process(self, process: Any, step_id: str | None = None) -> str:
        """The name of ``step_id`` (default: the process's current step) in the process's version."""
        step = process.current_step if step_id is None else step_id
        version = process.version if process.__class__.version.is_cached(process) else None
        return self.name(process.version_id, step, version.graph if version is not None else None)
