"""Safe conditions: a bounded subset of CEL (package ``common-expression-language``).

Never ``eval``. On top of CEL's own sandbox (no attribute access to Python objects, no imports,
no exponent operator, overflow-checked integers) we bound the cost ourselves:

- an expression is at most ``MAX_LENGTH`` characters and ``MAX_DEPTH`` brackets deep;
- comprehension macros (``map``, ``filter``, ``all``, ``exists``, ``exists_one``) are refused, so
  evaluation time is linear in the expression's size;
- only whitelisted functions and operators may be called;
- every name must be a known process variable (checked when a definition is validated);
- string and list values handed to an expression are bounded (``MAX_VALUE_SIZE``), and so is
  a string result.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import cel

from workflows.errors import ExpressionError

MAX_LENGTH = 1000
MAX_DEPTH = 24
MAX_VALUE_SIZE = 10_000
MAX_RESULT_SIZE = 100_000

ALLOWED_FUNCTIONS = frozenset(
    {
        "_+_", "_-_", "_*_", "_/_", "_%_", "-_", "!_",
        "_==_", "_!=_", "_<_", "_<=_", "_>_", "_>=_",
        "_&&_", "_||_", "_?_:_", "_[_]", "@in", "@not_strictly_false",
        "size", "contains", "startsWith", "endsWith", "matches",
        "int", "uint", "double", "string", "bool", "timestamp", "duration", "has",
    }
)  # fmt: skip
_MACROS = re.compile(r"\b(map|filter|all|exists|exists_one)\s*\(")
_STRING_LITERAL = re.compile(r"""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""", re.S)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BUILTIN_VARIABLES = frozenset({"now"})


@dataclass(frozen=True)
class Expression:
    source: str
    program: Any
    names: tuple[str, ...]


def _depth(source: str) -> int:
    depth = best = 0
    for char in source:
        if char in "([{":
            depth += 1
            best = max(best, depth)
        elif char in ")]}":
            depth -= 1
    return best


def compile_expression(source: str, known: Iterable[str] | None = None) -> Expression:
    """Compile and check a condition. Raises ExpressionError with a readable message."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("the condition is empty")
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"the condition is longer than {MAX_LENGTH} characters")
    bare = _STRING_LITERAL.sub('""', source)
    if _depth(bare) > MAX_DEPTH:
        raise ExpressionError(f"the condition nests deeper than {MAX_DEPTH} brackets")
    if "__" in bare:
        raise ExpressionError("names with double underscores are not allowed in conditions")
    if macro := _MACROS.search(bare):
        raise ExpressionError(f"'{macro.group(1)}(…)' loops are not allowed in conditions")
    try:
        program = cel.compile(source)
        names = tuple(program.variables())
        functions = set(program.functions())
    except Exception as exc:  # the Rust parser raises ValueError with a caret diagram
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExpressionError(f"the condition {source!r} does not parse: {first}") from None
    unknown_functions = sorted(functions - ALLOWED_FUNCTIONS)
    if unknown_functions:
        raise ExpressionError(
            f"the condition {source!r} calls functions that are not allowed: {', '.join(unknown_functions)}"
        )
    if known is not None:
        allowed = set(known) | BUILTIN_VARIABLES
        unknown = sorted(set(names) - allowed)
        if unknown:
            raise ExpressionError(
                f"the condition {source!r} uses unknown variables: {', '.join(unknown)} "
                '(declare process variables in the definition\'s "variables" list)'
            )
    return Expression(source=source, program=program, names=names)


def _bounded(name: str, value: Any) -> Any:
    if isinstance(value, str | bytes | list | tuple | dict) and len(value) > MAX_VALUE_SIZE:
        raise ExpressionError(f"variable {name!r} is too large to be used in a condition")
    if isinstance(value, dict):
        return {str(k): _bounded(name, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_bounded(name, v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        raise ExpressionError(f"variable {name!r} is too large a number")
    return value


def evaluate(expression: Expression, variables: dict[str, Any], *, now: datetime | None = None) -> Any:
    """Evaluate with only the names the expression uses; missing variables are null."""
    context: dict[str, Any] = {}
    for name in expression.names:
        if name == "now" and "now" not in variables:
            context["now"] = now or datetime.now(UTC)
            continue
        context[name] = _bounded(name, variables.get(name))
    try:
        result = expression.program.execute(context)
    except Exception as exc:
        raise ExpressionError(f"the condition {expression.source!r} failed: {exc}") from None
    if isinstance(result, str | bytes | list) and len(result) > MAX_RESULT_SIZE:
        raise ExpressionError(f"the condition {expression.source!r} produced a value that is too large")
    return result


def is_identifier(name: str) -> bool:
    return bool(_IDENT.match(name or ""))
