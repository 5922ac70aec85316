# One invoice line per contract, month and price segment: a price change mid-month bills two lines.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_partial_credit_notes_and_invoicing_run_preview"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="invoiceline",
            name="invoiceline_one_per_contract_period",
        ),
        migrations.AddConstraint(
            model_name="invoiceline",
            constraint=models.UniqueConstraint(
                fields=("contract", "period_start", "service_start"), name="invoiceline_one_per_contract_period"
            ),
        ),
    ]
