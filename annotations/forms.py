"""Browser forms: the expert pages' and the lab console's. They parse input; the services decide."""
from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from annotations.models import Domain


class SignUpForm(UserCreationForm):
    """Account fields for a visitor who applies before having an account."""

    email = forms.EmailField(help_text="Where moderators reach you about your application.")

    class Meta(UserCreationForm.Meta):
        fields = ["username", "email"]


class ExpertApplicationForm(forms.Form):
    domains = forms.MultipleChoiceField(
        choices=Domain.choices, widget=forms.CheckboxSelectMultiple,
        help_text="Each domain has its own qualification test after a moderator approves you.",
    )
    credentials = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5, "cols": 60}), max_length=5000,
        help_text="Degrees, licences, years of practice, publications: what makes you an expert.",
    )
    wallet_address = forms.CharField(
        max_length=42, label="Wallet address",
        widget=forms.TextInput(attrs={"size": 46, "spellcheck": "false", "autocomplete": "off", "placeholder": "0x…"}),
        help_text="EIP-55 checksummed (mixed-case) address for payouts; copy it from your wallet.",
    )


class SkipForm(forms.Form):
    reason = forms.CharField(max_length=500, strip=True)
