"""Forms of the wallet and campaign funding pages: amounts are typed in tokens and become base units here."""
from __future__ import annotations

from django import forms

from datadao.inputs import unstorable
from rewards.amounts import parse_amount, token_symbol


class AmountForm(forms.Form):
    amount = forms.CharField(max_length=40, help_text="In tokens, e.g. 12.5")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["amount"].widget.attrs.update({"inputmode": "decimal", "placeholder": f"0.00 {token_symbol()}"})

    def clean_amount(self) -> int:
        try:
            amount = parse_amount(self.cleaned_data["amount"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if amount <= 0:
            raise forms.ValidationError("the amount must be positive")
        return amount


class FundForm(AmountForm):
    """Funding a campaign from the lab console: the amount in tokens and the form's idempotency key.

    The key is made when the form is rendered (a hidden field), so sending the
    same form twice funds once, as the API's ``Idempotency-Key`` header does.
    """

    key = forms.CharField(max_length=100, required=False, widget=forms.HiddenInput)

    def clean_key(self) -> str | None:
        key = self.cleaned_data["key"].strip()
        reason = unstorable(key)
        if reason is not None:
            raise forms.ValidationError(reason)
        return key or None
