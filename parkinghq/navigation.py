"""The portal's menu: each entry shows only when its page would let this user in.

An entry names its page by URL name; who may open it is read from that page's own view, from the roles
its ``role_required`` decorator checks (``accounts.roles.roles_allow``), so the menu and the view cannot
disagree. An entry may add a further test the view also makes (``visible``), such as "there is something
this user may start". Exactly one entry is active: the one whose URL is the longest prefix of the path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple

from django.urls import NoReverseMatch, resolve, reverse
from django.utils.translation import gettext_lazy as _


def _can_start_any(user: Any) -> bool:
    from workflows.event_views import can_start_any  # one small query: is there anything this user may start?

    return can_start_any(user)


@dataclass(frozen=True)
class Entry:
    label: Any  # a lazy translation
    urlname: str
    icon: str
    visible: Callable[[Any], bool] | None = None  # a test besides the view's roles


ENTRIES: tuple[Entry, ...] = (
    Entry(_("Basket"), "workflows:basket", "inbox"),
    Entry(_("Processes"), "workflows:process-list", "diagram-3"),
    Entry(_("Start process"), "workflows:start-list", "play-circle", visible=_can_start_any),
    Entry(_("Workflows"), "workflows:definition-list", "bezier2"),
    Entry(_("Events"), "workflows:event-list", "broadcast"),
    Entry(_("Car parks"), "carparks:carpark-list", "p-square"),
    Entry(_("Customers & contracts"), "carparks:customer-list", "people"),
    Entry(_("Billing"), "billing:invoice-list", "receipt"),
    Entry(_("Bank statements"), "billing:bank-statement-list", "bank"),
    Entry(_("CPMS"), "connect:connection-list", "plug"),
    Entry(_("Monitoring"), "monitoring:dashboard", "graph-up"),
    Entry(_("Administration"), "accounts:user-list", "gear"),
)


class MenuItem(NamedTuple):
    label: Any
    urlname: str
    icon: str
    url: str
    active: bool


class NavigationError(LookupError):
    """A menu entry whose view declares no roles: the menu could not know who may open it."""


@cache
def view_roles(urlname: str) -> tuple[str, ...]:
    """The roles the page's ``role_required`` checks (empty: any portal role)."""
    view = resolve(reverse(urlname)).func
    try:
        return tuple(view.portal_roles)  # type: ignore[attr-defined]
    except AttributeError:
        raise NavigationError(f"the view of {urlname} is not guarded by role_required") from None


def may_open_page(user: Any, urlname: str) -> bool:
    """Whether the page of ``urlname`` (a URL without arguments) lets this user in: its view's role check.
    Tab bars show a tab only when this holds (``{% may_open "app:name" as shown %}``, ``{% load navigation %}``)."""
    from accounts.roles import roles_allow

    return roles_allow(user, view_roles(urlname))


def may_open(user: Any, entry: Entry) -> bool:
    """Whether the entry's page answers this user (the view's own role check, then the entry's own test)."""
    if not may_open_page(user, entry.urlname):
        return False
    return entry.visible is None or entry.visible(user)


def menu(user: Any, path: str) -> list[MenuItem]:
    """The entries this user may open, the one whose URL is the longest prefix of ``path`` marked active."""
    items: list[tuple[Entry, str]] = []
    for entry in ENTRIES:
        try:
            url = reverse(entry.urlname)
        except NoReverseMatch:  # an app that is not installed
            continue
        if may_open(user, entry):
            items.append((entry, url))
    matching = [url for _entry, url in items if path.startswith(url) and url != "/"]
    active = max(matching, key=len, default=None)
    return [MenuItem(entry.label, entry.urlname, entry.icon, url, url == active) for entry, url in items]
