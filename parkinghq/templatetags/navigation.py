"""``{% load navigation %}``: show a link (a tab of a tab bar) only when its page lets the user in.

``{% may_open "carparks:case-list" as show_cases %}{% if show_cases %}<li>…</li>{% endif %}`` reads the
roles of the page's ``role_required``, as the main menu does (:mod:`parkinghq.navigation`), so a tab and
its page cannot disagree.
"""

from __future__ import annotations

from typing import Any

from django import template

from parkinghq.navigation import may_open_page

register = template.Library()


@register.simple_tag(takes_context=True)
def may_open(context: Any, urlname: str) -> bool:
    request = context.get("request")
    user = getattr(request, "user", None)
    return user is not None and may_open_page(user, urlname)
