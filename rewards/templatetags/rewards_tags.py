"""Template filters for amounts: ``{{ entry.amount|tokens }}`` -> "12.50 DDF"."""
from __future__ import annotations

from django import template

from rewards.amounts import format_amount

register = template.Library()


@register.filter(name="tokens")
def tokens(base_units) -> str:
    if base_units is None or base_units == "":
        return ""
    return format_amount(int(base_units))


@register.filter(name="signed_tokens")
def signed_tokens(base_units) -> str:
    """Like ``tokens`` with an explicit + on credits, for ledger histories."""
    if base_units is None or base_units == "":
        return ""
    value = int(base_units)
    return ("+" if value > 0 else "") + format_amount(value)
