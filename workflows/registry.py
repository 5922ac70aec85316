"""The registry of system tasks: Python callables a workflow's system step may name.

Apps register their callables in a module ``<app>/system_tasks.py`` (imported when the
workflows app is ready)::

    from workflows.registry import SystemTaskContext, system_task

    @system_task("connect.push_credentials", reads=["contract_id"], writes=["credentials_pushed"],
                 description="Push the contract's credentials to the car park's CPMS.")
    def push_credentials(ctx: SystemTaskContext) -> dict:
        ...
        return {"credentials_pushed": 2}

A callable receives a :class:`SystemTaskContext` and returns a dict of process variables to
write (or ``None``). It must be idempotent for one ``ctx.idempotency_key``: the engine may run
it again after a crash or a re-delivered job. Raising any exception counts as a failed
attempt (retried with backoff); raising :class:`PermanentError` skips the remaining retries
and opens an incident at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


class PermanentError(Exception):
    """A failure that retrying will not fix (bad data, a refused request)."""


@dataclass
class SystemTaskContext:
    process: Any
    step_id: str
    variables: dict[str, Any]
    idempotency_key: str
    attempt: int = 1

    @property
    def business_object(self) -> Any:
        return self.process.business_object


@dataclass(frozen=True)
class RegisteredTask:
    name: str
    func: Callable[[SystemTaskContext], dict[str, Any] | None]
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, RegisteredTask] = {}


def system_task(
    name: str, *, reads: Iterable[str] = (), writes: Iterable[str] = (), description: str = ""
) -> Callable[[Callable[[SystemTaskContext], dict[str, Any] | None]], Callable[..., Any]]:
    def decorator(func: Callable[[SystemTaskContext], dict[str, Any] | None]) -> Callable[..., Any]:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.func is not func and existing.func.__qualname__ != func.__qualname__:
            raise ValueError(f"system task {name!r} is already registered by {existing.func.__module__}")
        _REGISTRY[name] = RegisteredTask(
            name=name,
            func=func,
            reads=tuple(reads),
            writes=tuple(writes),
            description=description or _first_line(func.__doc__),
        )
        return func

    return decorator


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def get_task(name: str) -> RegisteredTask:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no system task is registered as {name!r}") from None


def is_registered(name: str) -> bool:
    return name in _REGISTRY


def registered_tasks() -> list[RegisteredTask]:
    return sorted(_REGISTRY.values(), key=lambda task: task.name)
