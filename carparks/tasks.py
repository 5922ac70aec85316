"""Celery tasks of the car-park domain: thin wrappers around services (schedules in parkinghq/schedules.py)."""

from celery import shared_task

from carparks import services


@shared_task
def offers_expire_due() -> int:
    return services.offers_expire_due()


@shared_task
def contracts_end_due() -> int:
    return services.contracts_end_due()


@shared_task
def contracts_apply_staged_changes() -> int:
    return services.contracts_apply_staged_changes()


@shared_task
def idempotency_records_purge() -> int:
    return services.idempotency_records_purge()


@shared_task(name="carparks.prices_roll")
def prices_roll() -> int:
    """Each product's ``monthly_price`` becomes its price valid today (idempotent)."""
    from carparks.product_services import prices_roll as roll

    return roll()
