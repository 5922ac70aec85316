"""One language per customer: ``language`` (emails, invoices, credit notes) takes over ``invoice_language``."""

from django.db import migrations


def copy_invoice_language(apps, schema_editor):
    Customer = apps.get_model("carparks", "Customer")
    for language in ("de", "en"):
        Customer.objects.filter(invoice_language=language).update(language=language)


def copy_back(apps, schema_editor):
    Customer = apps.get_model("carparks", "Customer")
    for language in ("de", "en"):
        Customer.objects.filter(language=language).update(invoice_language=language)


class Migration(migrations.Migration):
    dependencies = [("carparks", "0007_customer_language")]

    operations = [
        migrations.RunPython(copy_invoice_language, copy_back),
        migrations.RemoveField(model_name="customer", name="invoice_language"),
    ]
