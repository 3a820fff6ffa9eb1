"""Revenue sharing (DESIGN.md, Rewards): a lab buying an export of data it did not fund pays its contributors.

The flow, each step its own service and safe to run twice:

1. ``campaign_sale_set``: the owning lab puts a campaign's data up for sale
   at a flat price per export (``Campaign.data_price``, integer base units,
   whatever the format and filters: the buyer knows the price before the
   build, and a failed build costs nothing). Only under a licence that lets
   adapted data pass to another lab (``annotations.licences``).
2. ``data_purchase_create``: another lab buys. The declared use is checked
   against the licence and the campaign's allowed uses; the price moves
   from the buyer's account to the campaign's *sales escrow* (not its
   reward escrow, which pays epochs and is refunded to the owning lab) in
   the same database transaction that creates the export (gold tasks are
   never sold) and the ``DataPurchase``. An ``Idempotency-Key`` makes a
   retried request buy once; too low a balance writes nothing.
3. ``data_purchase_settle`` (Celery, after the build): the price goes from
   the sales escrow to the contributors of the exported rows in proportion
   to their data value, less the campaign's treasury fee, as one ledger
   transaction keyed ``purchase:<id>:revenue``; a failed build refunds the
   buyer (``purchase:<id>:refund``). The purchase row is locked and its
   state checked in the same transaction, so retries, redeliveries and
   concurrent runs move the money once.

How the price is split (``purchase_weights``): contributor i's weight is
n_i x v_i, where n_i is the number of i's judgments in the exported rows
(``exports.contributors``) and v_i is i's data value per pair
judgment (``DataValue.mean``, the KNN-Shapley value averaged over the
pairs; negative values count 0). Per-judgment values are not stored, so the
value of i's exported judgments is estimated as their count times i's
average value. A contributor the data-value job has not valued yet counts at
the campaign's average positive value; a campaign with no data value at all
splits by exported judgments alone (basis ``work``), so contributors are
paid even before the model job has run. With no positive weight, the whole
price goes to the treasury (basis ``none``). Shares are floored and the
leftover units go one each to the largest remainders, so the entries add up
to the price exactly.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations import licences
from exports.contributors import export_contributions
from exports.services import export_request
from annotations.models import Campaign, Lab
from exports.models import Export
from annotations.services import ServiceError
from datadao.jobs import job_queue
from datavalue.models import DataValue
from rewards import ledger
from rewards.amounts import format_amount
from rewards.models import Account, DataPurchase, LedgerTransaction

logger = logging.getLogger(__name__)
Kind = LedgerTransaction.Kind


class PurchaseNotReady(Exception):
    """The purchase's export is still being built (transient: retry later)."""


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


# --------------------------------------------------------------------------
# 1. Offer
# --------------------------------------------------------------------------


def campaign_sale_set(*, campaign: Campaign, for_sale: bool, price: int | None = None) -> Campaign:
    """Put a campaign's data up for sale at a flat ``price`` per export (base units), or take it off sale."""
    if price is not None:
        if isinstance(price, bool) or not isinstance(price, int) or price < 0:
            raise ServiceError("the price must be a whole number of base units.", field="price")
    new_price = campaign.data_price if price is None else price
    if for_sale:
        if new_price <= 0:
            raise ServiceError("give the price of one export, in base units.", field="price")
        refusal = licences.licence_allows_sale(campaign.licence)
        if refusal:
            raise ServiceError(refusal, field="licence")
    Campaign.objects.filter(pk=campaign.pk).update(data_for_sale=for_sale, data_price=new_price,
                                                   updated_at=timezone.now())
    campaign.refresh_from_db(fields=["data_for_sale", "data_price", "updated_at"])
    return campaign


# --------------------------------------------------------------------------
# 2. Purchase
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PurchaseResult:
    purchase: DataPurchase
    created: bool  # False: the Idempotency-Key had bought before; nothing happened now


def campaign_for_sale(*, buyer: Lab, campaign_id: int) -> Campaign:
    """A campaign of another lab whose data is for sale; 404 otherwise (existence does not leak)."""
    campaign = Campaign.objects.filter(pk=campaign_id).select_related("lab").first()
    if campaign is not None and campaign.lab_id == buyer.pk:
        raise ServiceError(
            "this campaign belongs to your lab; request an export of it instead (free).", field="campaign",
        )
    if campaign is None or not campaign.data_for_sale or campaign.status == Campaign.Status.DRAFT:
        raise ServiceError("No such campaign for sale.", status=404)
    return campaign


def data_purchase_create(
    *, buyer: Lab, campaign_id: int, user, use: str, format: str,  # noqa: A002 - the API's field name
    client_key: str | None = None, **filters,
) -> PurchaseResult:
    """Buy one export of another lab's campaign: charge the price into the sales escrow and queue the build.

    ``filters`` are the export filters a buyer may set (``file_format``,
    ``min_margin``, ``min_rater_quality``, ``exclude_flagged_raters``,
    ``drop_ties``, ``drop_near_duplicates``, ``near_duplicates``,
    ``test_fraction``). All or nothing: a refusal writes no row and moves
    no money.
    """
    if client_key:
        existing = DataPurchase.objects.filter(buyer=buyer, client_key=client_key).first()
        if existing is not None:
            if existing.campaign_id != campaign_id:
                raise ServiceError("this Idempotency-Key was used for a purchase of another campaign.",
                                   field="Idempotency-Key", status=409)
            return PurchaseResult(existing, False)
    campaign = campaign_for_sale(buyer=buyer, campaign_id=campaign_id)
    refusal = licences.sale_refusal(licence=campaign.licence, allowed_uses=campaign.allowed_uses, use=use)
    if refusal:
        raise ServiceError(refusal, field="use")
    price = campaign.data_price
    try:
        with transaction.atomic():
            purchase = _purchase(campaign, buyer, user, use.strip(), format, price, client_key or "", filters)
    except IntegrityError:
        # The same key raced in from a concurrent request; it won, return its purchase.
        existing = DataPurchase.objects.filter(buyer=buyer, client_key=client_key).first() if client_key else None
        if existing is None:
            raise
        return PurchaseResult(existing, False)
    return PurchaseResult(purchase, True)


def _purchase(campaign, buyer, user, use, format, price, client_key, filters) -> DataPurchase:  # noqa: A002
    buyer_account = ledger.lab_account(buyer)
    sales = ledger.sales_account(campaign)
    locked = ledger.lock_accounts([buyer_account.pk, sales.pk])
    balance = locked[buyer_account.pk].balance
    if balance < price:
        raise ServiceError(
            f"insufficient balance: your lab holds {format_amount(balance)}; this data costs "
            f"{format_amount(price)}. Top up first.",
            field="price", status=402,
        )
    export = export_request(campaign=campaign, user=user, format=format, use=use, include_gold=False, **filters)
    purchase = DataPurchase.objects.create(
        buyer=buyer, campaign=campaign, export=export, bought_by=user if getattr(user, "is_authenticated", False)
        else None, client_key=client_key, price=price, fee_bps=campaign.treasury_fee_bps, use=use,
        licence=campaign.licence,
    )
    ledger.ledger_post(
        key=f"purchase:{purchase.pk}:charge", kind=Kind.PURCHASE,
        entries=[(buyer_account, -price), (sales, price)],
        memo=f"Data purchase {purchase.pk}: export of campaign {campaign.name}"[:500], campaign=campaign,
        created_by=purchase.bought_by,
    )
    # Queued after the export's own build (on_commit runs callbacks in order).
    transaction.on_commit(lambda: job_queue("rewards.purchase_settle", purchase.pk))
    return purchase


# --------------------------------------------------------------------------
# 3. Settle
# --------------------------------------------------------------------------


def purchase_weights(purchase: DataPurchase) -> tuple[dict[int, float], str]:
    """``({expert id: weight}, basis)``: exported judgments x data value per pair (see the module docstring)."""
    counts = export_contributions(purchase.export)
    if not counts:
        return {}, DataPurchase.Basis.NONE
    values = dict(DataValue.objects.filter(campaign_id=purchase.campaign_id).values_list("expert_id", "mean"))
    if not values:
        return {e: float(n) for e, n in counts.items()}, DataPurchase.Basis.WORK
    positive = [v for v in values.values() if v > 0]
    unvalued = sum(positive) / len(positive) if positive else 0.0
    weights = {e: n * max(values.get(e, unvalued), 0.0) for e, n in counts.items()}
    if not any(w > 0 for w in weights.values()):
        return {}, DataPurchase.Basis.NONE
    return weights, DataPurchase.Basis.DATA_VALUE


def data_purchase_settle(*, purchase_id: int) -> DataPurchase:
    """Share a purchase's price among the exported rows' contributors, or refund it if the export failed.

    Raises ``PurchaseNotReady`` while the export is queued or running.
    """
    purchase = DataPurchase.objects.select_related("export", "campaign").get(pk=purchase_id)
    if purchase.state != DataPurchase.State.ESCROWED:
        return purchase
    state = purchase.export.state
    if state == Export.State.FAILED:
        return _refund(purchase_id)
    if state != Export.State.DONE:
        raise PurchaseNotReady(f"purchase {purchase_id}: export {purchase.export_id} is {state}")
    # Read the rows and values before taking locks; the state check below makes a second run a no-op.
    weights, basis = purchase_weights(purchase)
    fee, shares = revenue_split(purchase.price, weights, purchase.fee_bps)
    if not shares:
        basis = DataPurchase.Basis.NONE
    with transaction.atomic():
        current = DataPurchase.objects.select_for_update().get(pk=purchase_id)
        if current.state != DataPurchase.State.ESCROWED:
            return current
        accounts = ledger.expert_accounts_bulk(shares, Account.Kind.AVAILABLE)
        entries: list[tuple[Account | int, int]] = [(ledger.sales_account(current.campaign_id), -current.price)]
        if fee:
            entries.append((ledger.treasury_account(), fee))
        entries += [(accounts[e], s) for e, s in sorted(shares.items())]
        ledger.ledger_post(
            key=f"purchase:{current.pk}:revenue", kind=Kind.REVENUE, entries=entries,
            memo=f"Revenue share of data purchase {current.pk} ({purchase.campaign.name})"[:500],
            campaign=current.campaign_id,
        )
        current.state = DataPurchase.State.SETTLED
        current.basis = basis
        current.fee = fee
        current.paid_total = current.price - fee
        current.contributors = len(shares)
        current.finished_at = timezone.now()
        current.save(update_fields=["state", "basis", "fee", "paid_total", "contributors", "finished_at"])
        return current


def _refund(purchase_id: int) -> DataPurchase:
    with transaction.atomic():
        current = DataPurchase.objects.select_for_update().get(pk=purchase_id)
        if current.state != DataPurchase.State.ESCROWED:
            return current
        ledger.ledger_post(
            key=f"purchase:{current.pk}:refund", kind=Kind.REFUND,
            entries=[(ledger.sales_account(current.campaign_id), -current.price),
                     (ledger.lab_account(current.buyer_id), current.price)],
            memo=f"Data purchase {current.pk} refunded: its export failed", campaign=current.campaign_id,
        )
        current.state = DataPurchase.State.REFUNDED
        current.finished_at = timezone.now()
        current.save(update_fields=["state", "finished_at"])
        return current


def purchases_settle_due() -> int:
    """Settle or refund every escrowed purchase whose export has finished (the periodic safety net)."""
    due = list(
        DataPurchase.objects.filter(
            state=DataPurchase.State.ESCROWED, export__state__in=[Export.State.DONE, Export.State.FAILED],
        ).order_by("pk").values_list("pk", flat=True)
    )
    finished = 0
    for purchase_id in due:
        try:
            data_purchase_settle(purchase_id=purchase_id)
            finished += 1
        except Exception:  # noqa: BLE001 - one bad purchase must not hold up the others; logged in full
            logger.exception("purchase %s could not be settled", purchase_id)
    return finished
