"""APDS adapter: the Alliance for Parking Data Standards API, version 4.0.

Follows the APDS OpenAPI specification "APDS API Specification" version 4.0 (openapi 3.1.0,
``apiv4/apds4.yaml`` of the APDS sandbox) and the APDS 4 occupancy, inventory and rate-line examples.
The subset we pull, over HTTP with JSON (credentials: :mod:`connect.adapters.apds_rights`):

- ``GET /places?page=N&expand=…`` → ``HierarchyElementList`` (``meta`` = PaginatedListMeta, ``data`` =
  HierarchyElements). The hierarchy is campus → place → subplaceElement / identifiedArea / space: each
  element names its ``parentId`` (a VersionedReference; the spec's examples write ``parent``) or its parent
  lists it in ``childIds``, and ``layer`` counts from 0 at the top. **Car parks are the places**
  (``type`` place, no place above them); a ``campus`` holds places and becomes a group, never a car
  park; elements below a place are parts of it (their supply and counts add up to the place's when the
  place gives none). Names are MultilingualStrings (the connection's languages first), the position
  ``indicativePlacePointLocation`` (a list of GeoJSON Points; the examples' ``indicativePointLocation``
  Feature too, longitude first), the capacity ``characteristics.spacesTotal`` or the Supply, opening
  times ``times`` (Times: available24hours, operatingTime as periods or a validity).
- Occupancy: ``expand=occupancy`` adds ``hierarchyElementReference`` with ``supply[]`` and
  ``demandTable[].demandType[]`` (``count`` and/or ``percentage``, ``occupancyCalculation``,
  ``recordDateTime``); a row calculated as ``expected`` is a forecast, never the current occupancy. The
  element's ``occupancyLevel.occupancyIndicator.entryDefinedValue`` (a code list value such as free,
  limited, full) is kept as its status.
- Tariffs: ``GET /rates?expand=rateLineCollections.rateLines`` (RateTable with its ``validity``) tied to
  places through ``GET /rights/specs?expand=rateEligibility`` (RightSpecification.hierarchyElements).
  Both are optional for a server: 404, 405 or 501 means "not offered" (see ``not_offered``), not a failure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils.translation import gettext

from .apds_rights import ApdsRightsMixin
from .base import (
    DAYS,
    DEFAULT_LANGUAGES,
    CarParkRecord,
    CpmsAdapter,
    CpmsError,
    CpmsMalformed,
    CpmsRejected,
    CpmsUnavailable,
    GroupRecord,
    HealthResult,
    OccupancyRecord,
    Records,
    TariffRecord,
    clean_coordinate,
    clean_id,
    clean_int,
    clean_text,
    collect,
    parse_datetime,
)
from .oauth import ClientCredentialsMixin

SPEC = "APDS API Specification 4.0"
MAX_PAGES = 1000
MAX_DEPTH = 20
# HierarchyElementTypeEnum values that are car parks ("parkingPlace": drafts before 4.0) and groups.
CARPARK_TYPES = {"place", "parkingPlace"}
GROUP_TYPES = {"campus"}
# CalculationTypeEnum: an expected row is a forecast.
FORECAST = "expected"
# HTTP answers meaning "this server does not implement the endpoint" (the optional APDS domains).
NOT_OFFERED_STATUSES = {404, 405, 501}
STATIC_EXPAND = "streetAddress,pointLocation,characteristics,contacts,openingTimes,occupancy"
WEEK = tuple(DAYS.values())


# --- MultilingualString --------------------------------------------------------------------------
def names_of(value: Any, what: str) -> dict[str, str]:
    """An APDS MultilingualString as {language: text}, in the feed's order (first text per language wins)."""
    if value in (None, []):
        return {}
    if isinstance(value, str):
        text = clean_text(value, what)
        return {"": text} if text else {}
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise CpmsMalformed(f"{what} is not a MultilingualString (a list of language and string)")
    names: dict[str, str] = {}
    for item in value:
        text = clean_text(item.get("string"), what)
        if text:
            names.setdefault(str(item.get("language") or "").strip().lower(), text)
    return names


def pick(names: dict[str, str], prefer: Iterable[str]) -> str:
    """The text in the first preferred language present, else the feed's first text."""
    for language in prefer:
        if names.get(language):
            return names[language]
    return next(iter(names.values()), "")


def multilingual(value: Any, what: str, *, required: bool = False, prefer: tuple[str, ...] = DEFAULT_LANGUAGES) -> str:
    """One string of an APDS MultilingualString, in the first preferred language the feed has."""
    text = pick(names_of(value, what), prefer)
    if required and not text:
        raise CpmsMalformed(f"{what} is missing")
    return text


# --- the place hierarchy ---------------------------------------------------------------------------
def _element_id(element: Any) -> str:
    return str(element.get("id") or "?") if isinstance(element, dict) else "?"


def _reference_id(value: Any) -> str:
    """The id of a VersionedReference (or of a bare id string)."""
    if isinstance(value, dict):
        value = value.get("id")
    return str(value).strip() if value not in (None, "") else ""


class Hierarchy:
    """The elements of one /places answer with their parents and children.

    APDS gives the tree both ways: a child names its parent (``parentId``; ``parent`` in the spec's
    examples) and a parent may list its children (``childIds``). Both are read, so either suffices.
    """

    def __init__(self, elements: list[dict[str, Any]]):
        self.elements = elements
        self.by_id: dict[str, dict[str, Any]] = {}
        self.parent: dict[str, str] = {}
        for element in elements:
            self.by_id.setdefault(_element_id(element), element)
        for element in elements:
            own = _element_id(element)
            for child in element.get("childIds") or []:
                child_id = _reference_id(child)
                if child_id and child_id != own:
                    self.parent.setdefault(child_id, own)
        for element in elements:
            own = _element_id(element)
            parent = _reference_id(element.get("parentId") or element.get("parent"))
            if parent and parent != own:
                self.parent[own] = parent
        self.children: dict[str, list[dict[str, Any]]] = {}
        for child, parent in self.parent.items():
            if child in self.by_id:
                self.children.setdefault(parent, []).append(self.by_id[child])

    @staticmethod
    def type_of(element: dict[str, Any]) -> str:
        """The element's HierarchyElementTypeEnum; without one, layer 0/1 reads as a place (older feeds)."""
        kind = str(element.get("type") or "").strip()
        if kind:
            return kind
        layer = element.get("layer", 1)
        return "place" if isinstance(layer, int) and layer <= 1 else ""

    def ancestors(self, element_id: str) -> list[dict[str, Any]]:
        """Parents up to the top (known elements only), nearest first; a cycle stops the walk."""
        found, seen, current = [], {element_id}, element_id
        for _ in range(MAX_DEPTH):
            parent = self.parent.get(current)
            if not parent or parent in seen or parent not in self.by_id:
                break
            found.append(self.by_id[parent])
            seen.add(parent)
            current = parent
        return found

    def is_carpark(self, element: dict[str, Any]) -> bool:
        """A place with no place above it (a place inside a place is a part of that car park)."""
        if self.type_of(element) not in CARPARK_TYPES:
            return False
        return not any(self.type_of(up) in CARPARK_TYPES for up in self.ancestors(_element_id(element)))

    def carparks(self) -> list[dict[str, Any]]:
        return [element for element in self.elements if self.is_carpark(element)]

    def campuses(self) -> list[dict[str, Any]]:
        return [element for element in self.elements if self.type_of(element) in GROUP_TYPES]

    def campus_of(self, element: dict[str, Any]) -> str:
        for up in self.ancestors(_element_id(element)):
            if self.type_of(up) in GROUP_TYPES:
                return _element_id(up)
        return ""


# --- occupancy rows -------------------------------------------------------------------------------
@dataclass
class Demand:
    """The demand rows of one element: the latest current one and the forecasts."""

    current: dict[str, Any] | None = None
    observed_at: datetime | None = None
    forecast: list[dict[str, Any]] = field(default_factory=list)


def _percentage(value: Any, what: str) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise CpmsMalformed(f"{what}: {value!r} is not a percentage")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CpmsMalformed(f"{what}: {value!r} is not a percentage") from None
    if not 0 <= number <= 100:
        raise CpmsMalformed(f"{what}: {number:g} % is outside 0–100")
    return number


class ApdsAdapter(ClientCredentialsMixin, ApdsRightsMixin, CpmsAdapter):
    kind = "apds"
    label = "APDS 4"
    spec_version = SPEC
    supports_push = True
    supports_tariffs = True

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        # Optional endpoints the server does not implement, with a sentence for people
        # ({"rates": "The CPMS does not offer rates (GET …/rates answered HTTP 404); no tariffs are imported."}).
        self.not_offered: dict[str, str] = {}

    # --- paging --------------------------------------------------------------------------
    def _list(self, path: str, params: dict[str, Any], *, optional: bool = False) -> list[dict[str, Any]] | None:
        """Every item of a paginated list; ``optional``: None when the server does not offer the endpoint."""
        items: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            body = self._page(path, {**params, "page": page}, optional=optional and page == 1)
            if body is None:
                return None
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise CpmsMalformed(f"GET {path}: expected a paginated list with 'meta' and 'data'")
            meta = body.get("meta")
            if not isinstance(meta, dict):
                raise CpmsMalformed(f"GET {path}: the paginated list has no 'meta'")
            total = clean_int(meta.get("total"), f"{path} meta.total", maximum=10_000_000)
            offset = clean_int(meta.get("offset", 0), f"{path} meta.offset", maximum=10_000_000)
            items.extend(item for item in body["data"] if isinstance(item, dict))
            if not body["data"] or offset + len(body["data"]) >= total:
                return items
        raise CpmsMalformed(f"GET {path}: more than {MAX_PAGES} pages")

    def _page(self, path: str, params: dict[str, Any], *, optional: bool) -> Any:
        if not optional:
            return self.get_json(path, params=params)
        statuses: list[int] = []

        def remember(response: Any, *args: Any, **kwargs: Any) -> None:
            statuses.append(response.status_code)

        try:
            return self.get_json(path, params=params, hooks={"response": remember})
        except (CpmsRejected, CpmsUnavailable):
            if statuses and statuses[-1] in NOT_OFFERED_STATUSES:
                name = path.strip("/").replace("/", " ")
                self.not_offered[path.split("/")[0]] = (
                    f"The CPMS does not offer {name} (GET {self.url(path)} answered HTTP {statuses[-1]})."
                )
                return None
            raise

    def _hierarchy(self, expand: str) -> Hierarchy:
        return Hierarchy(self._list("places", {"expand": expand}) or [])

    # --- car parks and campuses ------------------------------------------------------------
    def pull_carparks(self) -> Records:
        tree = self._hierarchy(STATIC_EXPAND)
        records = collect(_unique(tree.carparks(), "place"), lambda element: self._place(tree, element), _element_id)
        _refuse_duplicates(tree.carparks(), records, "place")
        accepted = {record.external_id for record in records}
        groups = collect(
            _unique(tree.campuses(), "campus"),
            lambda element: self._campus(tree, element, accepted, records),
            _element_id,
        )
        records.groups = list(groups)
        records.refused.extend(groups.refused)
        return records

    def _place(self, tree: Hierarchy, element: dict[str, Any]) -> CarParkRecord:
        place_id = clean_id(element.get("id"), "place id")
        what = f"place {place_id}"
        names = names_of(element.get("name"), f"{what} name")
        name = pick(names, self.languages)
        if not name:
            raise CpmsMalformed(f"{what}: the name is missing")
        address = element.get("placeStreetAddress") or {}
        if not isinstance(address, dict):
            raise CpmsMalformed(f"{what}: placeStreetAddress is not an object")
        latitude, longitude = _location(element, what)
        capacity = _capacity(element, what, self.time_zone)
        if capacity is None:
            capacity = self._capacity_below(tree, place_id, what, 0)
        opening_times = self._opening_times(element.get("times"), what)
        return CarParkRecord(
            external_id=place_id,
            name=name[:200],
            names=names,
            capacity=clean_int(capacity if capacity is not None else 0, f"{what} capacity"),
            street=self._street(address, what),
            postcode=clean_text(address.get("postCode"), f"{what} postCode", max_length=20),
            city=multilingual(address.get("city"), f"{what} city", prefer=self.languages)[:100],
            country=clean_text(address.get("countryCode"), f"{what} countryCode", max_length=2).upper(),
            latitude=latitude,
            longitude=longitude,
            time_zone=clean_text(element.get("timeZone"), f"{what} timeZone", max_length=64),
            operator=self._operator(element, what),
            opening_times=opening_times,
            opening_hours=_opening_text(element.get("times"), opening_times),
            parent_id=tree.campus_of(element),
        )

    def _street(self, address: dict[str, Any], what: str) -> str:
        lines = address.get("addressLines") or []
        if not isinstance(lines, list):
            raise CpmsMalformed(f"{what}: addressLines is not a list")
        ordered = sorted((ln for ln in lines if isinstance(ln, dict)), key=lambda ln: _order(ln.get("order")))
        for line in ordered:
            if line.get("type", "street") == "street":
                return multilingual(line.get("text"), f"{what} street", prefer=self.languages)[:200]
        return ""

    def _operator(self, element: dict[str, Any], what: str) -> str:
        for assignment in element.get("responsibilityRoleAssignments") or []:
            if isinstance(assignment, dict) and assignment.get("type") == "operator":
                contacts = assignment.get("contactPoints") or [{}]
                first = contacts[0] if isinstance(contacts, list) and isinstance(contacts[0], dict) else {}
                return multilingual(first.get("organisationName"), f"{what} operator", prefer=self.languages)
        return ""

    def _capacity_below(self, tree: Hierarchy, element_id: str, what: str, depth: int) -> int | None:
        """Spaces of the parts below an element: each child's own figure, else its children's (no double count)."""
        if depth > MAX_DEPTH:
            return None
        total, known = 0, False
        for child in tree.children.get(element_id, []):
            if tree.type_of(child) in CARPARK_TYPES | GROUP_TYPES:
                continue
            child_what = f"{what} part {_element_id(child)}"
            spaces = _capacity(child, child_what, self.time_zone)
            if spaces is None:
                spaces = self._capacity_below(tree, _element_id(child), what, depth + 1)
            if spaces is not None:
                total, known = total + spaces, True
        return total if known else None

    def _campus(
        self, tree: Hierarchy, element: dict[str, Any], accepted: set[str], records: list[CarParkRecord]
    ) -> GroupRecord:
        campus_id = clean_id(element.get("id"), "campus id")
        what = f"campus {campus_id}"
        names = names_of(element.get("name"), f"{what} name")
        members = tuple(
            sorted(r.external_id for r in records if r.parent_id == campus_id and r.external_id in accepted)
        )
        capacity = _capacity(element, what, self.time_zone)
        if capacity is None and members:
            capacity = sum(r.capacity for r in records if r.external_id in members)
        return GroupRecord(
            external_id=campus_id,
            kind="campus",
            name=pick(names, self.languages)[:200],
            names=names,
            member_ids=members,
            capacity=capacity,
        )

    # --- opening times ------------------------------------------------------------------------
    def _opening_times(self, times: Any, what: str) -> tuple[dict[str, Any], ...]:
        """Times (components.schemas.Times) as rows {"days": [...], "from": "HH:MM", "to": "HH:MM"}."""
        if not times:
            return ()
        if not isinstance(times, dict):
            raise CpmsMalformed(f"{what}: times is not an object")
        if times.get("openingTimesUnknown") or times.get("openingTimesNotSpecified"):
            return ()
        if times.get("available24hours"):
            return ({"days": list(WEEK), "from": "00:00", "to": "24:00"},)
        periods = _periods(times.get("operatingTime"), f"{what} operatingTime")
        if not periods:
            for access in times.get("accessAndEgress") or []:
                periods.extend(_periods(access, f"{what} accessAndEgress"))
        return tuple(row for period in periods for row in _period_rows(period, what, self.languages))

    # --- occupancy -----------------------------------------------------------------------------
    def pull_occupancy(self) -> Records:
        tree = self._hierarchy("occupancy")
        records = collect(
            _unique(tree.carparks(), "place"), lambda element: self._occupancy(tree, element), _element_id
        )
        _refuse_duplicates(tree.carparks(), records, "place")
        groups = collect(
            _unique(tree.campuses(), "campus"),
            lambda element: self._campus_occupancy(tree, element, records),
            _element_id,
        )
        records.groups = list(groups)
        records.refused.extend(groups.refused)
        return records

    def _occupancy(self, tree: Hierarchy, element: dict[str, Any]) -> OccupancyRecord | None:
        place_id = clean_id(element.get("id"), "place id")
        what = f"place {place_id}"
        demand = self._demand(element, what)
        level = _level(element, what)
        # The Supply is the figure in force now (a temporary change included); spacesTotal is the built one.
        capacity = _supply(element, what, self.time_zone)
        if capacity is None:
            capacity = _capacity(element, what, self.time_zone)
        if capacity is None:
            capacity = self._capacity_below(tree, place_id, what, 0)
        occupied = percent = None
        observed = demand.observed_at
        status = level
        if demand.current is not None:
            row = demand.current
            if row.get("count") is not None:
                occupied = clean_int(row["count"], f"{what} count")
            else:
                percent = _percentage(row.get("percentage"), f"{what} percentage")
            status = status or clean_text(
                row.get("occupancyCalculation"), f"{what} occupancyCalculation", max_length=30
            )
        else:
            summed = self._occupied_below(tree, place_id, what, 0)
            if summed is not None:
                occupied, observed, calculation = summed
                status = status or calculation
        if occupied is None and percent is None and not status and not demand.forecast:
            return None  # the place publishes no occupancy at all (no sensors): nothing to store
        return OccupancyRecord(
            external_id=place_id,
            occupied=occupied,
            capacity=capacity,
            status=status,
            observed_at=observed,
            percent=percent,
            forecast=tuple(demand.forecast),
        )

    def _demand(self, element: dict[str, Any], what: str) -> Demand:
        """The latest counted/derived/verified row and the expected ones (forecasts) of an element."""
        reference = element.get("hierarchyElementReference")
        if reference in (None, {}):
            return Demand()
        if not isinstance(reference, dict):
            raise CpmsMalformed(f"{what}: hierarchyElementReference is not an object")
        tables = reference.get("demandTable") or []
        if not isinstance(tables, list):
            raise CpmsMalformed(f"{what}: demandTable is not a list")
        demand = Demand()
        for table in tables:
            if not isinstance(table, dict) or not isinstance(table.get("demandType") or [], list):
                raise CpmsMalformed(f"{what}: a demandTable entry has no demandType list")
            for row in table.get("demandType") or []:
                if not isinstance(row, dict):
                    raise CpmsMalformed(f"{what}: a demandType entry is not an object")
                at = parse_datetime(
                    row.get("recordDateTime") or table.get("timestamp"), f"{what} recordDateTime", tz=self.time_zone
                )
                if row.get("count") is None and row.get("percentage") is None:
                    continue  # a row without a number says nothing about how full the place is
                if row.get("occupancyCalculation") == FORECAST:
                    demand.forecast.append(_forecast_row(row, at, what))
                elif demand.current is None or (at and (demand.observed_at is None or at > demand.observed_at)):
                    demand.current, demand.observed_at = row, at
        demand.forecast.sort(key=lambda row: row["at"] or "")
        return demand

    def _occupied_below(
        self, tree: Hierarchy, element_id: str, what: str, depth: int
    ) -> tuple[int, datetime | None, str] | None:
        """Occupied spaces summed over the parts below an element (the sandbox's P+R example).

        Each child counts with its own latest row, else with its children's; a child that gives only a
        percentage counts with its supply. When one counted part cannot be turned into spaces, the sum
        would be too low, so there is none.
        """
        if depth > MAX_DEPTH:
            return None
        total, latest, calculations, known = 0, None, set(), False
        for child in tree.children.get(element_id, []):
            if tree.type_of(child) in CARPARK_TYPES | GROUP_TYPES:
                continue
            child_what = f"{what} part {_element_id(child)}"
            demand = self._demand(child, child_what)
            if demand.current is None:
                below = self._occupied_below(tree, _element_id(child), what, depth + 1)
                if below is None:
                    continue
                spaces, at, calculation = below
            else:
                spaces = _row_spaces(demand.current, _capacity(child, child_what, self.time_zone), child_what)
                if spaces is None:
                    return None
                at, calculation = demand.observed_at, str(demand.current.get("occupancyCalculation") or "")
            total, known = total + spaces, True
            calculations.add(calculation)
            if at and (latest is None or at > latest):
                latest = at
        if not known:
            return None
        return total, latest, (calculations.pop() if len(calculations) == 1 else "")[:30]

    def _campus_occupancy(
        self, tree: Hierarchy, element: dict[str, Any], records: list[OccupancyRecord]
    ) -> GroupRecord:
        campus_id = clean_id(element.get("id"), "campus id")
        what = f"campus {campus_id}"
        names = names_of(element.get("name"), f"{what} name")
        members = tuple(sorted(_element_id(e) for e in tree.carparks() if tree.campus_of(e) == campus_id))
        demand = self._demand(element, what)
        capacity = _capacity(element, what, self.time_zone)
        occupied = None
        if demand.current is not None:
            occupied = _row_spaces(demand.current, capacity, what)
        else:
            known = [r for r in records if r.external_id in members]
            if members and len(known) == len(members) and all(r.occupied is not None for r in known):
                occupied = sum(r.occupied or 0 for r in known)
        return GroupRecord(
            external_id=campus_id,
            kind="campus",
            name=pick(names, self.languages)[:200],
            names=names,
            member_ids=members,
            capacity=capacity,
            occupied=occupied,
            status=_level(element, what),
        )

    # --- tariffs --------------------------------------------------------------------------------
    def pull_tariffs(self) -> Records:
        """Rate tables with their validity, each tied to the places its right specifications name.

        A server without rates (or right specifications) still imports: an empty result and a note in
        ``not_offered`` instead of a failed sync.
        """
        self.not_offered.pop("rates", None)
        self.not_offered.pop("rights", None)
        tables = self._list("rates", {"expand": "rateLineCollections.rateLines"}, optional=True)
        if tables is None:
            return Records()
        specs = self._list("rights/specs", {"expand": "rateEligibility"}, optional=True) or []
        places_by_rate: dict[str, set[str]] = {}
        links = collect(specs, self._spec_links, _element_id)
        for rate_id, place_ids in links:
            places_by_rate.setdefault(rate_id, set()).update(place_ids)
        records = collect(tables, lambda table: self._tariff(table, places_by_rate), _element_id)
        records.refused[:0] = links.refused
        return records

    def _spec_links(self, spec: dict[str, Any]) -> list[tuple[str, list[str]]]:
        spec_id = clean_id(spec.get("id"), "right specification id")
        what = f"right specification {spec_id}"
        elements = spec.get("hierarchyElements") or []
        if not isinstance(elements, list):
            raise CpmsMalformed(f"{what}: hierarchyElements is not a list")
        places = [clean_id(_reference_id(ref), f"{what} hierarchyElement id") for ref in elements]
        pairs = []
        for eligibility in spec.get("rateEligibility") or []:
            rate_id = _reference_id((eligibility or {}).get("rateTable") if isinstance(eligibility, dict) else None)
            if rate_id:
                pairs.append((rate_id, places))
        return pairs

    def _tariff(self, table: dict[str, Any], places_by_rate: dict[str, set[str]]) -> TariffRecord:
        rate_id = clean_id(table.get("id"), "rate table id")
        what = f"rate table {rate_id}"
        validity = _validity(table.get("validity"), what, self.time_zone)
        times = tuple(row for period in validity["periods"] for row in _period_rows(period, what, self.languages))
        collections = table.get("rateLineCollections") or []
        if not isinstance(collections, list):
            raise CpmsMalformed(f"{what}: rateLineCollections is not a list")
        lines: list[dict[str, Any]] = []
        currency = ""
        starts: list[datetime | None] = []
        ends: list[datetime | None] = []
        for collection in sorted(
            (c for c in collections if isinstance(c, dict)), key=lambda c: _order(c.get("collectionSequence"))
        ):
            collection_currency = clean_text(collection.get("applicableCurrency"), f"{what} currency", max_length=3)
            currency = currency or collection_currency
            start = parse_datetime(collection.get("validStart"), f"{what} validStart", tz=self.time_zone)
            end = parse_datetime(collection.get("validEnd"), f"{what} validEnd", tz=self.time_zone)
            starts.append(start)
            ends.append(end)
            rate_lines = collection.get("rateLines") or []
            if not isinstance(rate_lines, list):
                raise CpmsMalformed(f"{what}: rateLines is not a list")
            for line in sorted(
                (ln for ln in rate_lines if isinstance(ln, dict)), key=lambda ln: _order(ln.get("sequence"))
            ):
                lines.append(self._rate_line(line, what, collection_currency, start, end, times))
        valid_from = validity["from"] or (min(starts) if starts and None not in starts else None)
        valid_until = validity["until"] or (max(ends) if ends and None not in ends else None)
        names = names_of(table.get("rateTableName"), f"{what} name")
        return TariffRecord(
            external_id=rate_id,
            name=(pick(names, self.languages) or rate_id)[:200],
            currency=currency,
            lines=tuple(lines),
            place_ids=tuple(sorted(places_by_rate.get(rate_id, ()))),
            valid_from=valid_from,
            valid_until=valid_until,
        )

    def _rate_line(
        self,
        line: dict[str, Any],
        what: str,
        currency: str,
        start: datetime | None,
        end: datetime | None,
        times: tuple[dict[str, Any], ...],
    ) -> dict[str, Any]:
        """One RateLine with the time ranges it applies in (its table's periods, its collection's validity)."""
        return {
            "sequence": line.get("sequence"),
            "description": multilingual(line.get("description"), f"{what} line", prefer=self.languages),
            "type": clean_text(line.get("rateLineType"), f"{what} rateLineType", max_length=40),
            "value": _amount(line.get("value"), f"{what} line value", required=True),
            "min_value": _amount(line.get("minValue"), f"{what} line minValue"),
            "max_value": _amount(line.get("maxValue"), f"{what} line maxValue"),
            "increment": clean_text(line.get("incrementPeriod"), f"{what} incrementPeriod", max_length=20),
            "duration_start": clean_text(line.get("durationStart"), f"{what} durationStart", max_length=10),
            "duration_end": clean_text(line.get("durationEnd"), f"{what} durationEnd", max_length=10),
            "usage": clean_text(line.get("usageCondition"), f"{what} usageCondition", max_length=20),
            "currency": currency,
            "valid_from": start.isoformat() if start else None,
            "valid_until": end.isoformat() if end else None,
            "times": [dict(row) for row in times],
        }

    def health_check(self) -> HealthResult:
        started = datetime.now()
        try:
            body = self.get_json("places", params={"page": 1, "expand": "none"})
            if (
                not isinstance(body, dict)
                or not isinstance(body.get("meta"), dict)
                or not isinstance(body.get("data"), list)
            ):
                raise CpmsMalformed("GET places did not answer with an APDS paginated list")
        except CpmsError as exc:
            return HealthResult(ok=False, message=str(exc), latency_ms=_elapsed(started))
        total = body["meta"].get("total")
        return HealthResult(
            ok=True,
            message=gettext("APDS 4 endpoint answered: %(total)s places published.") % {"total": total},
            latency_ms=_elapsed(started),
            details={"places": total},
        )


# --- helpers -----------------------------------------------------------------------------------
def _unique(elements: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
    """The first element of each id (a repeated one is refused by :func:`_refuse_duplicates`)."""
    seen: set[str] = set()
    unique = []
    for element in elements:
        element_id = _element_id(element)
        if element_id not in seen:
            seen.add(element_id)
            unique.append(element)
    return unique


def _refuse_duplicates(elements: list[dict[str, Any]], records: Records, what: str) -> None:
    seen: set[str] = set()
    for element in elements:
        element_id = _element_id(element)
        if element_id in seen:
            records.refuse(element_id, f"{what} {element_id} is listed twice; the first entry was used")
        seen.add(element_id)


def _order(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _location(element: dict[str, Any], what: str) -> tuple[Any, Any]:
    """Latitude and longitude of a place's indicative point (GeoJSON: longitude first)."""
    point = element.get("indicativePlacePointLocation")
    if isinstance(point, list):
        point = point[0] if point else None
    if point is None:
        point = element.get("indicativePointLocation")
    if not point:
        return None, None
    geometry = point.get("geometry", point) if isinstance(point, dict) else None
    coordinates = geometry.get("coordinates") if isinstance(geometry, dict) else None
    if not isinstance(coordinates, list) or len(coordinates) != 2:
        raise CpmsMalformed(f"{what}: the indicative point location has no [longitude, latitude] pair")
    longitude = clean_coordinate(coordinates[0], f"{what} longitude", limit=180)
    latitude = clean_coordinate(coordinates[1], f"{what} latitude", limit=90)
    return latitude, longitude


def _capacity(element: dict[str, Any], what: str, tz: Any = None) -> int | None:
    """An element's own spaces: characteristics.spacesTotal, else its Supply."""
    characteristics = element.get("characteristics") or {}
    if not isinstance(characteristics, dict):
        raise CpmsMalformed(f"{what}: characteristics is not an object")
    if characteristics.get("spacesTotal") is not None:
        return clean_int(characteristics["spacesTotal"], f"{what} spacesTotal")
    return _supply(element, what, tz)


def _supply(element: dict[str, Any], what: str, tz: Any = None) -> int | None:
    """The element's Supply in force now: a supply with a validity window (a temporary change) before the
    standing one, spaceView before vehicleView; supplies are alternatives, not added up."""
    reference = element.get("hierarchyElementReference")
    if not isinstance(reference, dict) or not reference.get("supply"):
        return None
    supply = reference["supply"]
    if not isinstance(supply, list) or not all(isinstance(item, dict) for item in supply):
        raise CpmsMalformed(f"{what}: supply is not a list of objects")
    now = datetime.now(UTC)
    candidates = []
    for item in supply:
        start = parse_datetime(item.get("supplyValidityStart"), f"{what} supplyValidityStart", tz=tz)
        end = parse_datetime(item.get("supplyValidityEnd"), f"{what} supplyValidityEnd", tz=tz)
        if (start and start > now) or (end and end < now):
            continue
        windowed = start is not None or end is not None
        candidates.append((not windowed, item.get("supplyViewType") == "vehicleView", item))
    if not candidates:
        return None
    best = min(candidates, key=lambda candidate: candidate[:2])[2]
    return clean_int(best.get("supplyQuantity"), f"{what} supplyQuantity")


def _level(element: dict[str, Any], what: str) -> str:
    """occupancyLevel.occupancyIndicator.entryDefinedValue: a code-list value such as free, limited, full."""
    level = element.get("occupancyLevel")
    if not level:
        return ""
    indicator = level.get("occupancyIndicator") if isinstance(level, dict) else None
    if not isinstance(indicator, dict):
        raise CpmsMalformed(f"{what}: occupancyLevel has no occupancyIndicator")
    return clean_text(indicator.get("entryDefinedValue"), f"{what} occupancyLevel", max_length=30)


def _row_spaces(row: dict[str, Any], capacity: int | None, what: str) -> int | None:
    """Occupied spaces of one demand row: its count, else its percentage of the capacity."""
    if row.get("count") is not None:
        return clean_int(row["count"], f"{what} count")
    percent = _percentage(row.get("percentage"), f"{what} percentage")
    if percent is None or capacity is None:
        return None
    return round(capacity * percent / 100)


def _forecast_row(row: dict[str, Any], at: datetime | None, what: str) -> dict[str, Any]:
    forecast: dict[str, Any] = {"at": at.isoformat() if at else None}
    if row.get("count") is not None:
        forecast["occupied"] = clean_int(row["count"], f"{what} expected count")
    if row.get("percentage") is not None:
        forecast["percent"] = _percentage(row["percentage"], f"{what} expected percentage")
    return forecast


def _amount(value: Any, what: str, *, required: bool = False) -> float | None:
    if value in (None, ""):
        if required:
            raise CpmsMalformed(f"{what} is missing")
        return None
    if isinstance(value, bool):
        raise CpmsMalformed(f"{what}: {value!r} is not an amount")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise CpmsMalformed(f"{what}: {value!r} is not an amount") from None


def _periods(value: Any, what: str) -> list[dict[str, Any]]:
    """The Periods of a PeriodsOrValidity (OperatingTime, AccessAndEgress): its periods or its validity's."""
    if not value:
        return []
    if not isinstance(value, dict):
        raise CpmsMalformed(f"{what} is not an object")
    if isinstance(value.get("periods"), list):
        return [period for period in value["periods"] if isinstance(period, dict)]
    validity = value.get("validity")
    if isinstance(validity, dict):
        spec = validity.get("validityTimeSpecification") or {}
        return [period for period in spec.get("validPeriods") or [] if isinstance(period, dict)]
    return []


def _period_rows(period: dict[str, Any], what: str, prefer: tuple[str, ...]) -> list[dict[str, Any]]:
    """A Period as rows {"days", "from", "to"}: no days given means every day, no times the whole day."""
    days: list[str] = []
    for recurring in period.get("recurringDayWeekMonthPeriod") or []:
        for day in (recurring or {}).get("applicableDay") or []:
            code = DAYS.get(str(day).lower())
            if code is None:
                raise CpmsMalformed(f"{what}: {day!r} is not a day of the week")
            if code not in days:
                days.append(code)
    days = sorted(days, key=WEEK.index) or list(WEEK)
    name = ""
    if period.get("periodName"):
        name = pick(names_of(period["periodName"], f"{what} periodName"), prefer)
    ranges = period.get("recurringTimePeriodOfDay") or [{"startTimeOfPeriod": "00:00", "endTimeOfPeriod": "24:00"}]
    rows = []
    for time_range in ranges:
        start = _clock((time_range or {}).get("startTimeOfPeriod"), what)
        end = _clock((time_range or {}).get("endTimeOfPeriod"), what)
        row: dict[str, Any] = {"days": list(days), "from": start, "to": end}
        if name:
            row["name"] = name
        rows.append(row)
    return rows


def _clock(value: Any, what: str) -> str:
    text = str(value or "").strip()
    parts = text.split(":")
    if len(parts) != 2 or not all(part.isdigit() for part in parts) or int(parts[0]) > 24 or int(parts[1]) > 59:
        raise CpmsMalformed(f"{what}: {value!r} is not a time of day (HH:MM)")
    return f"{int(parts[0]):02d}:{parts[1]}"


def _opening_text(times: Any, rows: tuple[dict[str, Any], ...]) -> str:
    """A short text of the opening times, e.g. "Mo-Fr 06:00-22:00; Sa 08:00-20:00" or "Mo-Su 00:00-24:00"."""
    if not rows:
        return ""
    parts = []
    for row in rows:
        days = row["days"]
        indexes = [WEEK.index(day) for day in days]
        if len(days) > 2 and indexes == list(range(indexes[0], indexes[0] + len(days))):
            label = f"{days[0]}-{days[-1]}"
        else:
            label = ",".join(days)
        parts.append(f"{label} {row['from']}-{row['to']}")
    return "; ".join(parts)[:200]


def _validity(value: Any, what: str, tz: Any) -> dict[str, Any]:
    """A Validity: its bounding start and end (overallStartTime/overallEndTime) and its valid periods."""
    empty: dict[str, Any] = {"from": None, "until": None, "periods": []}
    if not value:
        return empty
    if not isinstance(value, dict):
        raise CpmsMalformed(f"{what}: validity is not an object")
    spec = value.get("validityTimeSpecification") or {}
    if not isinstance(spec, dict):
        raise CpmsMalformed(f"{what}: validityTimeSpecification is not an object")
    return {
        "from": parse_datetime(spec.get("overallStartTime"), f"{what} overallStartTime", tz=tz),
        "until": parse_datetime(spec.get("overallEndTime"), f"{what} overallEndTime", tz=tz),
        "periods": [period for period in spec.get("validPeriods") or [] if isinstance(period, dict)],
    }


def _elapsed(started: datetime) -> int:
    return int((datetime.now() - started).total_seconds() * 1000)
