"""Translate the condition styles of other modelers into CEL, our decision language.

- CEL as we write it: ``deposit > 0 && approved`` (kept as is).
- Camunda 8 / Zeebe FEEL: ``=deposit > 0 and approved`` — the leading ``=`` marks an expression;
  ``and``/``or``/``not(…)`` and the single ``=`` comparison become ``&&``/``||``/``!(…)``/``==``.
- Camunda 7 JUEL: ``${deposit > 0 and approved}`` — the wrapper goes, ``and``/``or``/``not``/``eq``/
  ``ne``/``lt``/``gt``/``le``/``ge`` become their CEL operators.

Only these simple, unambiguous rewrites are done; anything else is kept and left to the engine's
validation, which names the step whose condition does not compile.
"""

from __future__ import annotations

import re

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
