"""IBANs as SEPA Direct Debit accepts them: checked where they are typed, before anything is sent or saved."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from stdnum import iban as stdnum_iban
from stdnum.exceptions import ValidationError as StdnumError

# The countries and territories of the SEPA scheme (European Payments Council, "EPC list of SEPA scheme
# countries"): the EU and EEA states, Switzerland, the United Kingdom, Monaco, San Marino, Andorra, the
# Vatican, Albania, Moldova, Montenegro, North Macedonia, and the IBAN-issuing territories that belong to
# them (the Channel Islands and the Isle of Man use GB IBANs; French overseas departments use FR).
SEPA_COUNTRIES = frozenset(
    {
        # EU
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
        "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
        # EEA outside the EU
        "IS", "LI", "NO",
        # other scheme members
        "CH", "GB", "MC", "SM", "AD", "VA", "AL", "MD", "ME", "MK",
        # territories with their own IBAN country code
        "GI", "GG", "JE", "IM", "PM", "BL", "MF", "GF", "GP", "MQ", "RE", "YT", "AX",
    }
)  # fmt: skip


def iban_normalise(value: str) -> str:
    """The IBAN without spaces, in capitals; a wrong checksum or a country outside SEPA is refused."""
    compact = "".join(str(value or "").split()).upper()
    if not compact:
        raise ValidationError(gettext("Enter the IBAN of the account."), code="required")
    try:
        stdnum_iban.validate(compact)
    except StdnumError:
        raise ValidationError(
            gettext("This IBAN is not valid: check it for a typing error (its check digits do not match)."),
            code="iban_invalid",
        ) from None
    if compact[:2] not in SEPA_COUNTRIES:
        raise ValidationError(
            gettext("Direct debits are only possible from accounts in the SEPA area; %(country)s is not part of it.")
            % {"country": compact[:2]},
            code="iban_not_sepa",
        )
    return compact


def iban_display(iban: str) -> str:
    """Groups of four, as printed on cards and statements."""
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


class IbanField(forms.CharField):
    """A form field that accepts an IBAN with or without spaces and cleans it with :func:`iban_normalise`."""

    default_error_messages = {"required": _("Enter the IBAN of the account.")}

    def __init__(self, **kwargs) -> None:  # noqa: ANN003
        kwargs.setdefault("max_length", 42)
        kwargs.setdefault("label", _("IBAN"))
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("autocomplete", "off")
        self.widget.attrs.setdefault("spellcheck", "false")

    def clean(self, value):  # noqa: ANN001, ANN201
        value = super().clean(value)
        if value in self.empty_values:
            return value
        return iban_normalise(value)
