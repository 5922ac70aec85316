"""A list page's own search box, distinct from the top bar's global search.

The top bar's search form sends ``q`` to the global search; a list page that offered its own ``q`` box
would put two fields of one name on the page. Each list names its box after what it searches
(``invoice_search``, ``customer_search`` …). A link or bookmark of before, ``?q=…``, still filters the
list: when the list's own name is absent, ``q`` is read in its place.
"""

from __future__ import annotations

from django.http import QueryDict

LEGACY = "q"


def search_term(params: QueryDict, name: str) -> str:
    """The stripped text of the list's search box ``name`` (or of a bookmarked ``q``)."""
    value = params.get(name)
    if value is None:
        value = params.get(LEGACY, "")
    return value.strip()


def search_data(params: QueryDict, name: str) -> QueryDict | None:
    """The GET data for a filter form whose search field is ``name``: a bookmarked ``q`` moves into it.
    ``None`` when the request has no parameters (an unbound form, as ``request.GET or None``)."""
    if not params:
        return None
    if name in params or LEGACY not in params:
        return params
    data = params.copy()
    data.setlist(name, data.getlist(LEGACY))
    del data[LEGACY]
    return data
