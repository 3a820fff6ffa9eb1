"""Revenue sharing (DESIGN.md, Rewards): a lab buying an export of data it did not fund pays its contributors.

The payment, less the campaign's treasury fee (``treasury_fee_bps``), is split
among the experts of the campaign in proportion to their data value
(``annotations.DataValue.total``, the summed KNN-Shapley value of their
judgments; negative values earn nothing). Amounts are integer base units:
shares are floored and the leftover units go one each to the largest
remainders (ties by expert id), so the parts always add up to the payment.
With no positive value to share, everything goes to the treasury.

Posting is one ledger transaction under the idempotency key
``revenue:export:<id>``: paying twice for one export moves money once.

Approximation, to refine: value is the expert's whole-campaign value, not the
value of the exported rows only (per-judgment values are not stored yet).
The transaction kind is ``reward`` until the rewards owner adds a dedicated
``revenue`` kind.
"""
from __future__ import annotations

from collections.abc import Mapping

from rewards import ledger
from rewards.models import Account, LedgerTransaction


def revenue_split(amount: int, values: Mapping[int, float], fee_bps: int) -> tuple[int, dict[int, int]]:
    """``(treasury fee, {expert id: share})`` with ``fee + sum(shares) == amount``; zero shares left out."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError("amount must be a non-negative integer of base units")
    if not 0 <= fee_bps <= 10_000:
        raise ValueError("fee_bps must be within 0..10000")
    fee = amount * fee_bps // 10_000
    pool = amount - fee
    positive = {e: float(v) for e, v in values.items() if v > 0}
    total = sum(positive.values())
    if pool == 0 or total <= 0:
        return amount, {}
    exact = {e: pool * v / total for e, v in positive.items()}
    shares = {e: int(x) for e, x in exact.items()}
    leftover = pool - sum(shares.values())
    for e in sorted(exact, key=lambda e: (-(exact[e] - shares[e]), e))[:leftover]:
        shares[e] += 1
    return fee, {e: s for e, s in shares.items() if s > 0}


def revenue_share_post(*, export, paying_lab, amount: int, created_by=None) -> ledger.Posted:
    """Charge ``paying_lab`` ``amount`` for ``export`` and credit the treasury fee and the contributors' shares."""
    from annotations.models import DataValue

    campaign = export.campaign
    values = dict(DataValue.objects.filter(campaign=campaign).values_list("expert_id", "total"))
    fee, shares = revenue_split(amount, values, campaign.treasury_fee_bps)
    accounts = ledger.expert_accounts_bulk(shares, Account.Kind.AVAILABLE)
    entries: list[tuple[Account | int, int]] = [(ledger.lab_account(paying_lab), -amount)]
    if fee:
        entries.append((ledger.treasury_account(), fee))
    entries += [(accounts[e], s) for e, s in sorted(shares.items())]
    return ledger.ledger_post(
        key=f"revenue:export:{export.pk}", kind=LedgerTransaction.Kind.REWARD, entries=entries,
        memo=f"Revenue share of export {export.pk} of campaign {campaign.pk}", campaign=campaign,
        created_by=created_by,
    )
