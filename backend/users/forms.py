import uuid
from decimal import Decimal

from django import forms
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

from backend.payments.amounts import money_parse
from backend.payments.services import REASON_MAX_LENGTH


class MoneyInput(forms.Field):
    """A sum typed as the bot reads it (`money_parse`): ASCII digits, a comma or a dot
    before the kopecks, digit groups split by spaces, a sign; no exponents. Twelve
    digits of rubles at most, so no sum here exceeds MAX_AMOUNT.

    A text box, not a browser's number box (which would silently drop a comma and turn
    50,5 into 505).
    """

    default_error_messages = {
        "invalid": _(
            "Enter a sum with the digits 0–9, up to two after a comma: 100, -50, 50,5 or 1 000,25."
        ),
        "negative": _("The sum cannot be negative."),
    }

    def __init__(self, *, signed: bool = True, **kwargs) -> None:
        self.signed = signed
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal"}))
        super().__init__(**kwargs)

    def to_python(self, value) -> Decimal | None:
        if value in self.empty_values:
            return None
        amount = money_parse(str(value))
        if amount is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        if not self.signed and amount < 0:
            raise forms.ValidationError(self.error_messages["negative"], code="negative")
        return amount

    def prepare_value(self, value):
        return str(value) if isinstance(value, Decimal) else value


class BalanceAdjustmentForm(forms.Form):
    """Either a signed amount, or the balance to set (turned into the difference
    against the balance the admin saw, which must still be the balance).

    `key` makes the form single-use: a new one comes with every blank form, and the
    ledger row the form makes carries it, so the same form sent again changes nothing.
    """

    amount = MoneyInput(label=_("Change by"), required=False, help_text=_("signed: 100 or -50,5"))
    set_to = MoneyInput(label=_("Or set the balance to"), required=False, signed=False)
    reason = forms.CharField(
        label=_("Reason"),
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    notify = forms.BooleanField(
        label=_("Notify the user"),
        required=False,
        help_text=_("the bot tells them the change and the new balance"),
    )
    show_reason = forms.BooleanField(
        label=_("Show the reason"), required=False, help_text=_("in the message to the user")
    )
    seen_balance = MoneyInput(widget=forms.HiddenInput, signed=False)
    key = forms.CharField(
        widget=forms.HiddenInput,
        validators=[RegexValidator(r"\A[0-9a-f]{32}\Z")],
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["key"].initial = uuid.uuid4().hex

    def clean(self):
        data = super().clean()
        if self.has_error("amount") or self.has_error("set_to"):
            return data  # the field's own error says it all
        if data.get("show_reason") and not data.get("notify"):
            self.add_error("show_reason", _("The reason is shown only in a notice to the user."))
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
