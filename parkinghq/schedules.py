"""Every periodic job of the product, in one place (read by Celery beat via settings)."""

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict] = {
    "accounts-worker-heartbeat": {
        "task": "accounts.tasks.worker_heartbeat",
        "schedule": 30.0,
    },
    # Safety nets under the waitlist-offer and contract-termination processes (idempotent).
    "carparks-offers-expire-due": {
        "task": "carparks.tasks.offers_expire_due",
        "schedule": 300.0,
    },
    "carparks-contracts-end-due": {
        "task": "carparks.tasks.contracts_end_due",
        "schedule": crontab(minute=15, hour=0),
    },
    "carparks-staged-changes": {
        "task": "carparks.tasks.contracts_apply_staged_changes",
        "schedule": crontab(minute=30, hour=0),
    },
    # Product.monthly_price follows the price list: a planned price becomes today's (idempotent).
    "carparks-prices-roll": {
        "task": "carparks.prices_roll",
        "schedule": crontab(minute=5, hour=0),
    },
    "carparks-idempotency-purge": {
        "task": "carparks.tasks.idempotency_records_purge",
        "schedule": crontab(minute=45, hour=3),
    },
    # Fires due workflow timers (escalations, waits, message timeouts, retries); takes rows with
    # SELECT … FOR UPDATE SKIP LOCKED, so running it twice at once never fires a timer twice.
    "workflows-tick": {
        "task": "workflows.tasks.tick",
        "schedule": 10.0,
    },
    # Billing: the month is billed in advance on the 1st (UTC); yesterday's month is exported nightly.
    "billing-invoicing-run-monthly": {
        "task": "billing.tasks.invoicing_run_monthly",
        "schedule": crontab(minute=0, hour=4, day_of_month=1),
    },
    "billing-accounting-export-nightly": {
        "task": "billing.tasks.accounting_export_nightly",
        "schedule": crontab(minute=30, hour=2),
    },
    # Invoices paid by bank transfer and unpaid after their due date start the overdue-transfer dunning (once).
    "billing-bank-transfers-overdue": {
        "task": "billing.tasks.bank_transfers_overdue_daily",
        "schedule": crontab(minute=0, hour=7),
    },
    # Stripe's balance transactions of yesterday against the ledger; a Finance task per difference.
    "billing-stripe-reconcile-nightly": {
        "task": "billing.tasks.stripe_reconcile_nightly",
        "schedule": crontab(minute=45, hour=2),
    },
    # Connect: car-park data nightly, occupancy every five minutes, whitelist reconciliation nightly.
    "connect-sync-static-nightly": {
        "task": "connect.tasks.sync_static_all",
        "schedule": crontab(hour=2, minute=15),
    },
    "connect-sync-occupancy": {
        "task": "connect.tasks.sync_occupancy_all",
        "schedule": crontab(minute="*/5"),
    },
    "connect-reconcile-nightly": {
        "task": "connect.tasks.reconcile_all",
        "schedule": crontab(hour=3, minute=30),
    },
    # Monitoring: daily figures from the history (idempotent per day), alert rules, statements.
    "monitoring-aggregate-daily": {
        "task": "monitoring.tasks.aggregate_daily",
        "schedule": crontab(minute=20, hour=0),
    },
    "monitoring-evaluate-alerts": {
        "task": "monitoring.tasks.evaluate_alerts",
        "schedule": 300.0,
    },
    "monitoring-send-statements": {
        "task": "monitoring.tasks.send_statements",
        "schedule": crontab(minute=0, hour=6),
    },
}

# Keep a reference so linters do not flag the import; apps add crontab entries here.
__all__ = ["BEAT_SCHEDULE", "crontab"]
