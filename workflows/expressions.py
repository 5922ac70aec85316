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
from django.utils.translation import gettext as _

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
        raise ExpressionError(_("the condition is empty"))
    if len(source) > MAX_LENGTH:
        raise ExpressionError(_("the condition is longer than %(limit)s characters") % {"limit": MAX_LENGTH})
    bare = _STRING_LITERAL.sub('""', source)
    if _depth(bare) > MAX_DEPTH:
        raise ExpressionError(_("the condition nests deeper than %(limit)s brackets") % {"limit": MAX_DEPTH})
    if "__" in bare:
        raise ExpressionError(_("names with double underscores are not allowed in conditions"))
    if macro := _MACROS.search(bare):
        raise ExpressionError(_("'%(macro)s(…)' loops are not allowed in conditions") % {"macro": macro.group(1)})
    try:
        program = cel.compile(source)
        names = tuple(program.variables())
        functions = set(program.functions())
    except Exception as exc:  # the Rust parser raises ValueError with a caret diagram
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExpressionError(
            _("the condition %(condition)s does not parse: %(problem)s") % {"condition": repr(source), "problem": first}
        ) from None
    unknown_functions = sorted(functions - ALLOWED_FUNCTIONS)
    if unknown_functions:
        raise ExpressionError(
            _("the condition %(condition)s calls functions that are not allowed: %(functions)s")
            % {"condition": repr(source), "functions": ", ".join(unknown_functions)}
        )
    if known is not None:
        allowed = set(known) | BUILTIN_VARIABLES
        unknown = sorted(set(names) - allowed)
        if unknown:
            raise ExpressionError(
                _(
                    "the condition %(condition)s uses unknown variables: %(names)s "
                    '(declare process variables in the definition\'s "variables" list)'
                )
                % {"condition": repr(source), "names": ", ".join(unknown)}
            )
    return Expression(source=source, program=program, names=names)


def _bounded(name: str, value: Any) -> Any:
    if isinstance(value, str | bytes | list | tuple | dict) and len(value) > MAX_VALUE_SIZE:
        raise ExpressionError(_("variable %(name)s is too large to be used in a condition") % {"name": repr(name)})
    if isinstance(value, dict):
        return {str(k): _bounded(name, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_bounded(name, v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        raise ExpressionError(_("variable %(name)s is too large a number") % {"name": repr(name)})
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
        raise ExpressionError(
            _("the condition %(condition)s failed: %(problem)s")
            % {"condition": repr(expression.source), "problem": exc}
        ) from None
    if isinstance(result, str | bytes | list) and len(result) > MAX_RESULT_SIZE:
        raise ExpressionError(
            _("the condition %(condition)s produced a value that is too large") % {"condition": repr(expression.source)}
        )
    return result


def is_identifier(name: str) -> bool:
    return bool(_IDENT.match(name or ""))
