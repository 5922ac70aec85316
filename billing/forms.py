"""Forms of the Finance pages."""

from __future__ import annotations

import uuid
from decimal import Decimal, InvalidOperation

from django import forms
from django.core.validators import ProhibitNullCharactersValidator
from django.utils.translation import gettext_lazy as _

from billing.services import REFUND_REASON_MAX


class RefundForm(forms.Form):
    """Refund (part of) an invoice: the amount, the reason printed on the credit note, and a submission key
    so that a form sent twice refunds once."""

    amount = forms.CharField(
        label=_("Amount (€)"),
        max_length=20,
        help_text=_("Up to what can still be refunded; the whole paid amount credits the invoice in full."),
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    reason = forms.CharField(
        label=_("Reason (printed on the credit note)"),
        max_length=REFUND_REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    key = forms.CharField(widget=forms.HiddenInput, max_length=64, required=False)

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("key", uuid.uuid4().hex)

    def clean_amount(self) -> Decimal:
        raw = self.cleaned_data["amount"].strip().replace("€", "").replace(" ", "").replace("\u00a0", "")
        if "," in raw and "." in raw:  # 1.234,50 (German) or 1,234.50 (English): the last mark is the decimal one
            raw = raw.replace("." if raw.rfind(",") > raw.rfind(".") else ",", "")
        raw = raw.replace(",", ".")
        ProhibitNullCharactersValidator()(raw)
        try:
            amount = Decimal(raw)
            if not amount.is_finite() or abs(amount) >= Decimal("1e10"):
                raise InvalidOperation
            exact = amount == amount.quantize(Decimal("0.01"))
        except InvalidOperation:
            raise forms.ValidationError(_("Enter the amount as a number, for example 12.50.")) from None
        if not exact:
            raise forms.ValidationError(_("Enter the amount in euros and cents, for example 12.50."))
        if amount <= 0:
            raise forms.ValidationError(_("The refund amount must be more than 0."))
        return amount

    def clean_key(self) -> str:
        key = self.cleaned_data.get("key") or ""
        return key if key.isalnum() else ""
