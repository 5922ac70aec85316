"""Run the bundled CPMS simulator (APDS 4 subset over HTTP) until interrupted."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from connect.simulator import Auth, SimulatorServer, SimulatorState


class Command(BaseCommand):
    help = "Serve a simulated CPMS speaking the APDS 4 subset connect uses (see connect/simulator.py)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8010)
        parser.add_argument("--carparks", type=int, default=20, help="How many generated car parks (SIM-0001 …).")
        parser.add_argument("--seed", type=int, default=1, help="Seed for the generated car parks.")
        parser.add_argument("--token", default="", help="Require this bearer token (any token is accepted if empty).")
        parser.add_argument(
            "--client",
            action="append",
            default=[],
            metavar="ID:SECRET",
            help="An OAuth2 client allowed to get tokens at /auth (repeatable; any client if none is given).",
        )
        parser.add_argument("--token-lifetime", type=int, default=3600, help="expires_in of issued tokens (s).")
        parser.add_argument(
            "--require-token", action="store_true", help="APDS endpoints need a token issued at /auth (or --token)."
        )
        parser.add_argument(
            "--lenient-rights",
            action="store_true",
            help="Accept assigned rights that refer to unpublished <place>-season specs or resend a stored version.",
        )
        parser.add_argument(
            "--from-database",
            metavar="CONNECTION_CODE",
            default="",
            help="Also serve the car parks linked to this connection, with their valid credentials whitelisted.",
        )
        parser.add_argument(
            "--if-busy",
            choices=["fail", "idle"],
            default="fail",
            help="When the port is taken: fail, or idle (so `make run` keeps its other processes up).",
        )
        parser.add_argument("--verbose", action="store_true", help="Log every request.")

    def handle(self, *args: Any, **options: Any) -> None:
        state = SimulatorState(
            carparks=options["carparks"],
            seed=options["seed"],
            token=options["token"],
            strict_rights=not options["lenient_rights"],
        )
        clients = dict(client.partition(":")[::2] for client in options["client"])
        state.auth = Auth(lifetime=options["token_lifetime"], clients=clients, require=options["require_token"])
        if options["from_database"]:
            try:
                adopted, rights = adopt_database(state, options["from_database"])
            except DatabaseError as exc:  # not migrated yet: serve what we have rather than stop `make run`
                self.stderr.write(f"CPMS simulator: could not read linked car parks ({exc}); serving none.")
            else:
                self.stdout.write(f"Serving {adopted} linked car park(s) and {rights} credential(s) from the database.")
        try:
            server = SimulatorServer((options["host"], options["port"]), state, verbose=options["verbose"])
        except OSError as exc:
            if options["if_busy"] != "idle":
                raise CommandError(f"cannot listen on {options['host']}:{options['port']}: {exc}") from None
            self.stderr.write(f"CPMS simulator: {options['host']}:{options['port']} is taken ({exc}); idling.")
            _idle()
            return
        self.stdout.write(
            f"CPMS simulator (APDS 4) on {server.url} with {len(state.places)} car park(s). Ctrl-C stops."
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


def _idle() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def adopt_database(state: SimulatorState, connection_code: str) -> tuple[int, int]:
    """Add the connection's linked car parks as places and whitelist their valid credentials.

    The RightSpecifications the connection's products are mapped to (the demo maps each one) are
    published for their places, as the operator set them up in the CPMS; places without one get the
    simulator's own. A credential of an unmapped product is held under its place's first one.
    """
    from dataclasses import replace

    from connect.adapters.apds import ApdsAdapter
    from connect.models import CarParkLink, ProductRightMapping
    from connect.services import credential_entry, whitelisted_credentials

    links = list(CarParkLink.objects.filter(connection__code=connection_code).select_related("carpark"))
    adapter = ApdsAdapter(base_url="http://unused")
    rights = 0
    with state.lock:
        for link in links:
            carpark = link.carpark
            state.places[link.external_id] = {
                "id": link.external_id,
                "name": carpark.name,
                "capacity": carpark.capacity or 100,
                "street": carpark.street,
                "postcode": carpark.postcode,
                "city": carpark.city,
                "country": carpark.country or "DE",
                "latitude": float(carpark.latitude) if carpark.latitude is not None else None,
                "longitude": float(carpark.longitude) if carpark.longitude is not None else None,
                "time_zone": carpark.time_zone,
                "hourly": 2.5,
                "version": 1,
            }
        by_carpark = {link.carpark_id: link for link in links}
        mappings = ProductRightMapping.objects.filter(connection__code=connection_code).select_related("product")
        for mapping in mappings:
            link = by_carpark.get(mapping.product.carpark_id)
            if link is None:
                continue
            name = mapping.right_specification_name or mapping.right_specification_id
            spec = state.specs.setdefault(
                mapping.right_specification_id,
                {
                    "id": mapping.right_specification_id,
                    "version": mapping.right_specification_version,
                    "kind": "custom",
                    "names": {"de": name, "en": name},
                    "places": [],
                    "credentials": ["licensePlate", "rfid", "qrCode"],
                },
            )
            if link.external_id not in spec["places"]:
                spec["places"].append(link.external_id)
        state.publish_specs()
        for credential in whitelisted_credentials(carparks=[link.carpark for link in links]):
            entry = credential_entry(credential, by_carpark[credential.carpark_id])
            if not entry.right_specification_id:
                first = state.specs_for_place(entry.place_id)[0]
                entry = replace(entry, right_specification_id=first["id"], right_specification_version=first["version"])
            state.store_right(entry.right_id, adapter.assigned_right(entry))
            rights += 1
    return len(links), rights
