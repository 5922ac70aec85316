"""Demo data: the bundled CPMS simulator as a connection, with the demo car parks linked to it.

Runs after ``carparks.demo``. ``make run`` starts the simulator with ``--from-database simulator``,
so it serves exactly these car parks (and whitelists their valid credentials). Idempotent.
"""

from __future__ import annotations

from typing import IO

from django.conf import settings
from django.db import transaction

from carparks.models import CarPark

from .models import CarParkLink, CpmsConnection

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
    stdout.write(
        f"connect: {'created' if created else 'kept'} connection '{connection.name}', linked {linked} car park(s)\n"
    )
