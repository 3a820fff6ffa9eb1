"""Whether a campaign's data licence lets another lab buy an export of it, for a stated use.

A sale hands a filtered, re-shaped copy of the data (an adaptation) to a
third party, so the licence must allow redistribution of adaptations. The
platform sells only under licences it knows to allow that; a custom licence
("Acme Data Licence") cannot be checked by code, so its data is not for
sale here. On top of the licence, the campaign's ``allowed_uses`` (when it
lists any) bind the buyer's declared use, exactly as they bind the owning
lab's own exports.

No Django import: plain functions, tested on their own.
"""
from __future__ import annotations

from collections.abc import Iterable

# SPDX ids (lower case) of licences that allow sharing adapted data with anyone.
_TRANSFERABLE = frozenset({
    "cc0-1.0", "pddl-1.0", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-3.0", "cc-by-nc-4.0",
    "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "odc-by-1.0", "odbl-1.0", "cdla-permissive-1.0", "cdla-permissive-2.0",
    "cdla-sharing-1.0", "apache-2.0", "mit",
})
# No-derivatives licences allow verbatim copies only; an export is an adaptation.
_NO_DERIVATIVES = frozenset({"cc-by-nd-3.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0"})


def _normalised(licence: str) -> str:
    return (licence or "").strip().lower()


def is_non_commercial(licence: str) -> bool:
    return "-nc" in _normalised(licence)


def is_commercial_use(use: str) -> bool:
    """Uses named ``commercial``, ``commercial-training``, ``commercial_eval``... are commercial."""
    return "commercial" in (use or "").lower() and "non-commercial" not in (use or "").lower()


def licence_allows_sale(licence: str) -> str | None:
    """Why the licence forbids selling the data to another lab, or None when it allows it."""
    slug = _normalised(licence)
    if slug in _NO_DERIVATIVES:
        return (f"the campaign's licence ({licence}) allows no derivatives; an export is an adaptation of the data, "
                "so it cannot be sold.")
    if slug not in _TRANSFERABLE:
        return (f"the campaign's licence ({licence or 'none'}) is not one the platform can check allows passing "
                "the data to another lab; choose an open data licence (e.g. CC-BY-4.0) to sell it.")
    return None


def sale_refusal(*, licence: str, allowed_uses: Iterable[str], use: str) -> str | None:
    """Why a lab may not buy the data for ``use``, or None when the licence and allowed uses permit it."""
    use = (use or "").strip()
    if not use:
        return "state the use you will put the data to; the licence is checked against it."
    allowed = [u for u in allowed_uses or [] if u]
    if allowed and use not in allowed:
        return f"this campaign's data may not be used for {use!r}: its licence ({licence}) allows {', '.join(allowed)}."
    refusal = licence_allows_sale(licence)
    if refusal:
        return refusal
    if is_non_commercial(licence) and is_commercial_use(use):
        return f"the campaign's licence ({licence}) is non-commercial; {use!r} is a commercial use."
    return None
