from decimal import Decimal

from django import forms

MONEY = {"max_digits": 14, "decimal_places": 2}


class BalanceAdjustmentForm(forms.Form):
    """Either a signed amount, or the balance to set (turned into the difference
    against the balance the admin saw, which must still be the balance)."""

    amount = forms.DecimalField(
        label="Изменить на", required=False, help_text="со знаком: 100 или -50,5", **MONEY
    )
    set_to = forms.DecimalField(
        label="Или установить баланс", required=False, min_value=Decimal(0), **MONEY
    )
    reason = forms.CharField(label="Причина", widget=forms.Textarea(attrs={"rows": 2}))
    seen_balance = forms.DecimalField(widget=forms.HiddenInput, **MONEY)

    def clean(self):
        data = super().clean()
        amount, set_to = data.get("amount"), data.get("set_to")
        if (amount is None) == (set_to is None):
            raise forms.ValidationError("Укажите либо сумму изменения, либо новый баланс.")
        if set_to is not None and "seen_balance" in data:
            data["amount"] = set_to - data["seen_balance"]
            if data["amount"] == 0:
                raise forms.ValidationError("Баланс уже равен этой сумме.")
        elif amount == 0:
            raise forms.ValidationError("Сумма изменения не может быть нулевой.")
        return data
