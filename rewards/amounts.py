"""Token amounts for people: the one place base units become text and back.

Amounts live as integers in base units (``DATADAO_TOKEN_DECIMALS`` decimals
make one token); they never pass through a float, so parsing uses Decimal
and formatting uses integer division.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.conf import settings

from datadao.inputs import BIGINT_MAX

MAX_BASE_UNITS = BIGINT_MAX  # what a ledger amount (bigint) holds


def _decimals() -> int:
    return settings.DATADAO_TOKEN_DECIMALS


def token_symbol() -> str:
    return settings.DATADAO_TOKEN_SYMBOL


def format_amount(base_units: int, *, symbol: bool = True, min_decimals: int = 2) -> str:
    """12_500_000 -> "12.50 DDF"; 1_234_567 -> "1.234567 DDF"; thousands separated.

    Trailing zeros beyond ``min_decimals`` are dropped; no digit is ever
    rounded away, so what a person reads is exactly what the ledger holds.
    """
    if isinstance(base_units, bool) or not isinstance(base_units, int):
        raise TypeError(f"amounts are integer base units, got {base_units!r}")
    decimals = _decimals()
    sign = "-" if base_units < 0 else ""
    whole, frac = divmod(abs(base_units), 10**decimals)
    text = f"{whole:,}"
    if decimals:
        digits = f"{frac:0{decimals}d}".rstrip("0")
        digits = digits.ljust(min(min_decimals, decimals), "0")
        if digits:
            text = f"{text}.{digits}"
    text = sign + text
    return f"{text} {token_symbol()}" if symbol else text


def parse_amount(text: str) -> int:
    """"12.5" (tokens, as a person types them) -> 12_500_000 base units.

    Refuses negatives, more decimals than the token has, and anything that
    is not a plain decimal number, with a message a form can show.
    """
    cleaned = str(text).strip().replace(",", "").replace("_", "")
    if cleaned.upper().endswith(token_symbol().upper()):
        cleaned = cleaned[: -len(token_symbol())].strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:
        raise ValueError("enter an amount such as 12.5") from exc
    if not value.is_finite():
        raise ValueError("enter an amount such as 12.5")
    if value < 0:
        raise ValueError("the amount must not be negative")
    # Checked before scaling: "1e999990" would otherwise take seconds to become an integer.
    if value > Decimal(MAX_BASE_UNITS).scaleb(-_decimals()):
        raise ValueError(f"at most {format_amount(MAX_BASE_UNITS)}")
    scaled = value.scaleb(_decimals())
    if scaled != scaled.to_integral_value():
        raise ValueError(f"at most {_decimals()} decimal places")
    return int(scaled)
