"""Translate the condition styles of other modelers into CEL, our decision language.

- CEL as we write it: ``deposit > 0 && approved`` (kept as is).
- Camunda 8 / Zeebe FEEL: ``=deposit > 0 and approved`` — the leading ``=`` marks an expression;
  ``and``/``or``/``not(…)`` and the single ``=`` comparison become ``&&``/``||``/``!(…)``/``==``.
- Camunda 7 JUEL: ``${deposit > 0 and approved}`` — the wrapper goes, ``and``/``or``/``not``/``eq``/
  ``ne``/``lt``/``gt``/``le``/``ge`` become their CEL operators.

Only these simple, unambiguous rewrites are done. :func:`expression_to_cel` (what the importer uses) refuses
what has no CEL form here — function and method calls such as ``${execution.getVariable('x')}``, JUEL
``empty``/``div``/``mod``, FEEL ``between``/``in``/``some``/``if``, ranges, script languages — with a message
the importer ties to the element; anything else is left to the engine's validation, which names the step
whose condition does not compile.
"""

from __future__ import annotations

import json
import re

from django.utils.translation import gettext

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|!=|==|&&|\|\||=)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<space>\s+)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)

_FEEL_WORDS = {"and": "&&", "or": "||"}
_JUEL_WORDS = {"and": "&&", "or": "||", "eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=", "ge": ">="}


def _rewrite(text: str, words: dict[str, str], *, single_equals: bool, not_word: bool) -> str:
    out: list[str] = []
    previous_significant = ""
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        token = match.group()
        if kind == "word" and token in words and previous_significant != ".":
            token = words[token]
        elif kind == "word" and token == "not" and not_word:
            token = "!"
        elif kind == "op" and token == "=" and single_equals:
            token = "=="
        out.append(token)
        if kind != "space":
            previous_significant = token
    return "".join(out)


def to_cel(expression: str) -> str:
    """Return the CEL form of a condition written for CEL, Camunda 8 (FEEL) or Camunda 7 (JUEL)."""
    text = (expression or "").strip()
    if text.startswith("="):
        return _rewrite(text[1:].strip(), _FEEL_WORDS, single_equals=True, not_word=True).strip()
    juel = re.fullmatch(r"[$#]\{(.*)\}", text, re.DOTALL)
    if juel:
        return _rewrite(juel.group(1).strip(), _JUEL_WORDS, single_equals=False, not_word=True).strip()
    return text


def variable_reference(expression: str) -> str | None:
    """``${offer_expires_at}``, ``#{x}``, ``=x`` or ``x`` as a bare variable name, else None."""
    text = (expression or "").strip()
    match = re.fullmatch(r"(?:[$#]\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}|=\s*([A-Za-z_][A-Za-z0-9_]*))", text)
    if match:
        return match.group(1) or match.group(2)
    return None


def strip_expression(value: str) -> str:
    """A Camunda literal or expression naming a thing: ``${name}``, ``=\"name\"``, ``=name``, ``name``."""
    text = (value or "").strip()
    match = re.fullmatch(r"[$#]\{\s*(.*?)\s*\}", text)
    if match:
        return match.group(1)
    if text.startswith("="):
        text = text[1:].strip()
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            text = text[1:-1]
    return text


# -- expression languages --------------------------------------------------------------------------
XPATH = "http://www.w3.org/1999/XPath"  # the BPMN 2.0 default, declared by files that mean nothing by it


class ExpressionError(ValueError):
    """An expression that has no CEL form here; the message says why, for the element that holds it."""


def dialect(language: str) -> str:
    """``cel``, ``feel``, ``juel`` or ``""`` (undeclared: the BPMN default, XPath, means nothing to modelers)
    for a definitions' ``expressionLanguage`` or an expression's ``language``; anything else is returned
    as written (a script language: not run here)."""
    text = (language or "").strip()
    lowered = text.lower()
    if not text or lowered.rstrip("/") == XPATH.lower() or lowered == "xpath":
        return ""
    if "cel-spec" in lowered or lowered == "cel":
        return "cel"
    if "feel" in lowered:
        return "feel"
    if "juel" in lowered or lowered in {"el", "jsp-el", "http://java.sun.com/products/jsp/"}:
        return "juel"
    return text


_FEEL_UNMAPPED = {"between", "in", "instance", "of", "some", "every", "satisfies", "if", "then", "else", "for",
                  "return", "function"}  # fmt: skip
_JUEL_UNMAPPED = {"empty", "div", "mod", "instanceof"}


def _unmapped(text: str, words: set[str], allowed_calls: set[str], language: str) -> None:
    """Raise ExpressionError for a function or method call, or a word of the language with no CEL operator."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(text) if m.lastgroup != "space"]
    for index, (kind, token) in enumerate(tokens):
        following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        previous = tokens[index - 1][1] if index else ""
        if kind != "word":
            if token == "." and following == ".":
                raise ExpressionError(
                    gettext("the %(language)s range '..' has no CEL form here") % {"language": language}
                )
            continue
        if following == "(" and token not in allowed_calls:
            owner = tokens[index - 2][1] + "." if previous == "." and index >= 2 else ""
            raise ExpressionError(
                gettext(
                    "the %(language)s call %(call)s(…) has no CEL form here; "
                    "write the condition in CEL over process variables (e.g. deposit > 0 && approved)"
                )
                % {"language": language, "call": owner + token}
            )
        if token in words and previous != ".":
            raise ExpressionError(
                gettext("the %(language)s operator '%(operator)s' has no CEL form here; write the condition in CEL")
                % {"language": language, "operator": token}
            )


def expression_to_cel(expression: str, language: str = "") -> str:
    """The CEL form of an expression from a BPMN file, or ExpressionError when there is none.

    ``language`` is the element's ``language`` or else the file's ``expressionLanguage``. The text's own
    form wins over an undeclared language: ``=…`` is FEEL (Camunda 8), ``${…}``/``#{…}`` is JUEL (Camunda 7);
    the rest is CEL, ours (files of generic modelers declare nothing or the XPath default and mean CEL-like
    comparisons). A script language (JavaScript, Groovy, …) is refused.
    """
    text = (expression or "").strip()
    declared = dialect(language)
    if declared not in {"", "cel", "feel", "juel"}:
        raise ExpressionError(
            gettext("expressions in %(language)s are not run here; write the condition in CEL")
            % {"language": repr(declared)}
        )
    if text.startswith("="):
        kind = "feel"
    elif re.fullmatch(r"[$#]\{.*\}", text, re.DOTALL):
        kind = "juel"
    elif "${" in text or "#{" in text:
        raise ExpressionError(gettext("text and JUEL expressions (${…}) are mixed; write one CEL condition"))
    elif declared in {"", "cel", "juel"}:
        kind = "cel"  # a JUEL text outside ${…} is a literal, which reads the same in CEL
    else:  # declared FEEL without the leading "="
        kind = "feel"
        text = "=" + text
    if kind == "feel":
        _unmapped(text[1:], _FEEL_UNMAPPED, {"not"}, "FEEL")
    elif kind == "juel":
        inner = re.fullmatch(r"[$#]\{(.*)\}", text, re.DOTALL)
        _unmapped(inner.group(1) if inner else text, _JUEL_UNMAPPED, set(), "JUEL")
    return to_cel(text)


_STRING = re.compile(r"""("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')""")


def outcome_literal(cel: str) -> str | None:
    """``outcome == "approve"`` (or ``"approve" == outcome``) → ``approve``; None for any other condition."""
    text = cel.strip()
    match = re.fullmatch(r"outcome\s*==\s*" + _STRING.pattern, text) or re.fullmatch(
        _STRING.pattern + r"\s*==\s*outcome", text
    )
    if not match:
        return None
    literal = match.group(1)
    body = literal[1:-1]
    if literal[0] == "'":  # a single-quoted CEL string: the same escapes, the other quote is plain
        body = body.replace("\\'", "'").replace('"', '\\"')
    try:
        value = json.loads(f'"{body}"')
    except ValueError:
        return None
    return value if isinstance(value, str) else None
