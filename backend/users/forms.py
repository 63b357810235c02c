from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

MONEY = {"max_digits": 14, "decimal_places": 2}


class BalanceAdjustmentForm(forms.Form):
    """Either a signed amount, or the balance to set (turned into the difference
    against the balance the admin saw, which must still be the balance)."""

    # localize: a text box that takes «50,5» as well as «50.5» (a browser's number box
    # would silently drop a comma and turn 50,5 into 505).
    amount = forms.DecimalField(
        label=_("Change by"),
        required=False,
        localize=True,
        help_text=_("signed: 100 or -50.5"),
        **MONEY,
    )
    set_to = forms.DecimalField(
        label=_("Or set the balance to"),
        required=False,
        localize=True,
        min_value=Decimal(0),
        **MONEY,
    )
    reason = forms.CharField(label=_("Reason"), widget=forms.Textarea(attrs={"rows": 2}))
    seen_balance = forms.DecimalField(widget=forms.HiddenInput, **MONEY)

    def clean(self):
        data = super().clean()
        if self.has_error("amount") or self.has_error("set_to"):
            return data  # the field's own error says it all
        amount, set_to = data.get("amount"), data.get("set_to")
        if (amount is None) == (set_to is None):
            raise forms.ValidationError(_("Give either an amount to change by or a new balance."))
        if set_to is not None and "seen_balance" in data:
            data["amount"] = set_to - data["seen_balance"]
            if data["amount"] == 0:
                raise forms.ValidationError(_("The balance already equals this amount."))
        elif amount == 0:
            raise forms.ValidationError(_("The change cannot be zero."))
        return data
