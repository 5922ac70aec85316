"""Fixtures for connect: a real CPMS simulator on a free port, connections and contracts."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from carparks.models import CarPark, Contract, Credential, Customer, Product
from connect.models import CpmsConnection
from connect.simulator import RunningSimulator, start_simulator

DATA = Path(__file__).resolve().parent / "data"


class Sim:
    """The running simulator plus helpers that drive its control endpoints over HTTP."""

    def __init__(self, running: RunningSimulator):
        self.running = running
        self.url = running.url

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = requests.request(method, f"{self.url}/_sim/{path}", json=body, timeout=5)
        response.raise_for_status()
        return response.json()

    def faults(self, mode: str, *, count: int | None = None, delay: float = 0.0) -> None:
        self.control("POST", "faults", {"mode": mode, "count": count, "delay": delay})

    def set_place(self, place_id: str, **values: Any) -> None:
        self.control("PUT", f"places/{place_id}", values)

    def rights(self) -> list[str]:
        return self.control("GET", "state")["rights"]

    def right(self, right_id: str) -> dict[str, Any]:
        return requests.get(f"{self.url}/rights/assigned/{right_id}", timeout=5).json()


@pytest.fixture
def sim() -> Iterator[Sim]:
    running = start_simulator(carparks=5, seed=7)
    try:
        yield Sim(running)
    finally:
        running.stop()


@pytest.fixture
def connection(sim: Sim) -> CpmsConnection:
    connection = CpmsConnection(name="Simulator", code="sim", kind=CpmsConnection.Kind.APDS, base_url=sim.url)
    connection.timeout_seconds = 5.0
    connection.set_secret("any-token")
    connection.save()
    return connection


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def feed_server() -> Iterator[str]:
    """A plain static HTTP server for the published-format fixture files in tests/data."""
    handler = functools.partial(_QuietHandler, directory=str(DATA))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def make_contract(carpark: CarPark, *, plates: tuple[str, ...] = ("M-AB 123",), state: str = "active") -> Contract:
    customer = Customer.objects.create(name="Erika Mustermann", email="erika@example.com")
    product, _ = Product.objects.get_or_create(
        carpark=carpark, name="Season ticket", defaults={"monthly_price": Decimal("89.00"), "quota": 50}
    )
    contract = Contract.objects.create(
        customer=customer,
        product=product,
        state=state,
        start_date=date(2026, 1, 1),
        monthly_price=product.monthly_price,
    )
    for plate in plates:
        Credential.objects.create(
            contract=contract,
            carpark=carpark,
            kind=Credential.Kind.PLATE,
            identifier=plate,
            valid_from=date(2026, 1, 1),
        )
    return contract
