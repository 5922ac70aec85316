"""Demo data: the bundled CPMS simulator as a connection, with the demo car parks linked to it.

Runs after ``carparks.demo``. ``make run`` starts the simulator with ``--from-database simulator``,
so it serves exactly these car parks (and whitelists their valid credentials). Idempotent.
"""

from __future__ import annotations

from typing import IO

from django.conf import settings
from django.db import transaction

from carparks.models import CarPark, Product

from .models import CarParkLink, CpmsConnection, ProductRightMapping

CODE = "simulator"


@transaction.atomic
def load(stdout: IO[str]) -> None:
    connection, created = CpmsConnection.objects.get_or_create(
        code=CODE,
        defaults={
            "name": "CPMS simulator (demo)",
            "kind": CpmsConnection.Kind.APDS,
            "base_url": settings.CPMS_SIMULATOR_URL,
            "timeout_seconds": 5.0,
        },
    )
    if created:
        connection.set_secret("demo-simulator-token")
        connection.save(update_fields=["secret_encrypted", "secret_reference"])
    linked = 0
    for carpark in CarPark.objects.filter(cpms_link__isnull=True).order_by("code"):
        external_id = carpark.cpms_reference or f"SIM-{carpark.code.upper()}"
        if CarParkLink.objects.filter(connection=connection, external_id=external_id).exists():
            continue
        if not carpark.cpms_reference:
            CarPark.objects.filter(pk=carpark.pk).update(cpms_reference=external_id)
        CarParkLink.objects.create(connection=connection, carpark=carpark, external_id=external_id)
        linked += 1
    mapped = _right_mappings(connection)
    stdout.write(
        f"connect: {'created' if created else 'kept'} connection '{connection.name}', linked {linked} car park(s), "
        f"mapped {mapped} product(s) to RightSpecifications\n"
    )


def _right_mappings(connection: CpmsConnection) -> int:
    """Map every product sold at a linked car park to a RightSpecification of the CPMS.

    In a real CPMS the operator creates the RightSpecifications and an administrator maps the products
    on the connection's mapping page; the simulator started by ``make run`` (``--from-database``)
    publishes exactly these, so demo pushes refer to published ids. The ids look like a CPMS's own
    (``RS-D<product>``), never derived from the place, and start at version 2 (specs get revised).
    """
    made = 0
    products = Product.objects.filter(carpark__cpms_link__connection=connection).order_by("pk")
    for product in products.exclude(pk__in=connection.right_mappings.values("product_id")):
        ProductRightMapping.objects.create(
            connection=connection,
            product=product,
            right_specification_id=f"RS-D{product.pk}",
            right_specification_version=2,
            right_specification_name=f"Dauerparken {product.name}"[:200],
        )
        made += 1
    return made
