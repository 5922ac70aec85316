"""Forms of the bank-statement pages: the upload, the statement's entry filter, a credit's manual match and ignore."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from billing.bank_statements import invoice_find
from billing.models import BankEntry, Invoice

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class StatementUploadForm(forms.Form):
    file = forms.FileField(
        label=_("Bank statement file"),
        help_text=_("ISO 20022 camt.053 (account statement) or camt.054 (credit notification) as XML, at most 50 MB."),
        widget=forms.ClearableFileInput(attrs={"accept": ".xml,application/xml,text/xml"}),
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(_("The file is larger than 50 MB; ask the bank for a statement per day."))
        if upload.size == 0:
            raise forms.ValidationError(_("The file is empty."))
        return upload


STATUS_CHOICES = [("", _("All entries")), *BankEntry.Status.choices]


class EntryFilterForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), required=False, choices=STATUS_CHOICES)


class EntryMatchForm(forms.Form):
    invoice_number = forms.CharField(
        label=_("Invoice number"),
        max_length=40,
        help_text=_("For example INV2026-000133; or pick a suggested invoice below."),
    )

    def clean_invoice_number(self) -> Invoice:
        raw = self.cleaned_data["invoice_number"].replace("\x00", "").strip()
        invoice = invoice_find(raw)
        if invoice is None:
            raise forms.ValidationError(
                _("No issued invoice has the number “%(number)s”. Check the number."), params={"number": raw}
            )
        return invoice


class EntryIgnoreForm(forms.Form):
    reason = forms.CharField(
        label=_("Why it is not an invoice payment"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("For example: a refund from a supplier, paid back to the sender."),
    )


class InvoiceSearchForm(forms.Form):
    find = forms.CharField(
        label=_("Find an invoice"), required=False, max_length=100, help_text=_("Invoice number or customer name.")
    )
