"""A charge whose money the customer's bank took back is ``returned``: no longer the invoice's live charge.

Direct debits charged back before this migration kept the status ``succeeded`` and so blocked a new debit
of their reopened invoice; they become ``returned`` here (a SEPA charge with a dispute: every SEPA dispute
is a returned debit). Going back restores ``succeeded`` where the invoice has no other live charge.
"""

from django.db import migrations, models

LIVE = ["pending", "processing", "succeeded"]


def charged_back_debits_returned(apps, schema_editor):
    Payment = apps.get_model("billing", "Payment")
    Payment.objects.filter(
        kind="charge", status="succeeded", method="sepa_debit", disputes__isnull=False, bank_entry__isnull=True
    ).update(status="returned")


def returned_debits_succeeded(apps, schema_editor):
    Payment = apps.get_model("billing", "Payment")
    for payment in Payment.objects.filter(kind="charge", status="returned").order_by("pk"):
        live = Payment.objects.filter(
            invoice_id=payment.invoice_id, kind="charge", status__in=LIVE, bank_entry__isnull=True
        ).exists()
        if not live:
            Payment.objects.filter(pk=payment.pk).update(status="succeeded")


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0007_bank_entry_servicer_reference"),
    ]

    operations = [
        migrations.AlterField(
            model_name="payment",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("processing", "Processing (direct debit under way)"),
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                    ("returned", "Returned (taken back by the bank)"),
                ],
                db_index=True,
                default="pending",
                max_length=10,
            ),
        ),
        migrations.RunPython(charged_back_debits_returned, returned_debits_succeeded),
    ]
