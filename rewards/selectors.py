"""Reads on the rewards side: balances, histories, stake over time, reconciliation.

``expert_bonded_stake`` is the interface the annotation side uses for the
campaign minimum-stake rule.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet, Sum

from annotations.models import Campaign, Expert, Lab
from rewards.models import Account, DataPurchase, EpochClaim, EpochReward, LedgerEntry, LedgerTransaction, Unbonding
from datadao.wallet import to_checksum_address


def expert_bonded_stake(*, expert) -> int:
    """Bonded stake of an expert in base units (what counts toward a campaign's minimum stake)."""
    return (
        Account.objects.filter(kind=Account.Kind.BONDED, expert_id=getattr(expert, "pk", expert))
        .values_list("balance", flat=True)
        .first()
        or 0
    )


def experts_bonded_stake(*, expert_ids: Iterable[int]) -> dict[int, int]:
    """Bonded stake per expert id, in one read (experts without a bonded account left out)."""
    return dict(
        Account.objects.filter(kind=Account.Kind.BONDED, expert_id__in=list(expert_ids))
        .values_list("expert_id", "balance")
    )


@dataclass(frozen=True)
class ExpertBalances:
    available: int
    bonded: int
    unbonding: int
    unbonding_releases_at: datetime | None


def expert_balances(*, expert: Expert) -> ExpertBalances:
    by_kind = dict(Account.objects.filter(expert=expert).values_list("kind", "balance"))
    pending = (
        Unbonding.objects.filter(expert=expert, state=Unbonding.State.PENDING)
        .values_list("releases_at", flat=True).first()
    )
    return ExpertBalances(
        available=by_kind.get(Account.Kind.AVAILABLE, 0),
        bonded=by_kind.get(Account.Kind.BONDED, 0),
        unbonding=by_kind.get(Account.Kind.UNBONDING, 0),
        unbonding_releases_at=pending,
    )


def lab_balance(*, lab: Lab) -> int:
    return Account.objects.filter(kind=Account.Kind.LAB, lab=lab).values_list("balance", flat=True).first() or 0


def escrow_balance(*, campaign: Campaign) -> int:
    return (
        Account.objects.filter(kind=Account.Kind.ESCROW, campaign=campaign).values_list("balance", flat=True).first()
        or 0
    )


def escrow_entries(*, campaign: Campaign) -> QuerySet[LedgerEntry]:
    """The campaign escrow's ledger lines, newest first (the lab's funding page)."""
    return (LedgerEntry.objects.filter(account__kind=Account.Kind.ESCROW, account__campaign=campaign)
            .select_related("transaction").order_by("-created_at", "-id"))


def lab_entries(*, lab: Lab) -> QuerySet[LedgerEntry]:
    """The lab account's ledger lines, newest first (the lab's ledger page)."""
    return (LedgerEntry.objects.filter(account__kind=Account.Kind.LAB, account__lab=lab)
            .select_related("transaction", "transaction__campaign").order_by("-created_at", "-id"))


def accounts_of_user(user) -> QuerySet[Account]:
    """The accounts whose history ``user`` may read: their own expert accounts, their labs' and campaigns'."""
    if not user or not user.is_authenticated:
        return Account.objects.none()
    query = Q(expert__user=user) | Q(lab__members=user) | Q(campaign__lab__members=user)
    return Account.objects.filter(query).distinct()


def ledger_entries_for_user(user) -> QuerySet[LedgerEntry]:
    account_ids = list(accounts_of_user(user).values_list("id", flat=True))
    return (
        LedgerEntry.objects.filter(account_id__in=account_ids)
        .select_related("transaction", "account", "account__campaign", "transaction__epoch")
        .order_by("-created_at", "-id")
    )


def expert_earnings(*, expert: Expert) -> QuerySet[EpochReward]:
    return (
        EpochReward.objects.filter(expert=expert)
        .select_related("epoch", "epoch__campaign")
        .order_by("-epoch__ends_at", "-epoch_id")
    )


def campaign_earnings(*, expert: Expert, campaign: Campaign) -> int:
    """Settled rewards of this expert in this campaign, base units (unsettled work shows as pending)."""
    total = expert_earnings(expert=expert).filter(epoch__campaign=campaign).aggregate(s=Sum("amount"))["s"]
    return int(total or 0)


def claim_for(*, epoch_id: int, address: str) -> EpochClaim | None:
    try:
        checksummed = to_checksum_address(address)
    except ValueError:
        return None
    return EpochClaim.objects.filter(epoch_id=epoch_id, address=checksummed).select_related("epoch").first()


def expert_wallets(expert_ids: Iterable[int]) -> dict[int, str]:
    """expert id -> EIP-55 address for experts with a usable wallet address (others left out)."""
    wanted = set(expert_ids)
    out: dict[int, str] = {}
    for expert_id, address in Expert.objects.exclude(wallet_address="").values_list("id", "wallet_address"):
        if expert_id in wanted:
            try:
                out[expert_id] = to_checksum_address(address)
            except ValueError:
                continue  # an unusable address is paid in-platform rather than to nowhere
    return out


def bonded_stake_events(
    expert_ids: Iterable[int], start: datetime, end: datetime,
) -> dict[int, list[tuple[datetime, int]]]:
    """expert id -> [(time, bonded amount from then on)], opening amount at ``start`` first.

    Read from the ledger's entries on bonded accounts, so the history cannot
    disagree with the money.
    """
    wanted = set(expert_ids)
    bonded = Q(account__kind=Account.Kind.BONDED)
    opening = dict(
        LedgerEntry.objects.filter(bonded, created_at__lt=start)
        .values("account__expert_id").annotate(total=Sum("amount")).order_by()
        .values_list("account__expert_id", "total")
    )
    events: dict[int, list[tuple[datetime, int]]] = {
        expert_id: [(start, int(opening.get(expert_id) or 0))] for expert_id in wanted
    }
    running = {expert_id: int(opening.get(expert_id) or 0) for expert_id in wanted}
    for expert_id, at, amount in (
        LedgerEntry.objects.filter(bonded, created_at__gte=start, created_at__lt=end)
        .order_by("created_at", "id").values_list("account__expert_id", "created_at", "amount")
    ):
        if expert_id in wanted:
            running[expert_id] += amount
            events[expert_id].append((at, running[expert_id]))
    return events


# --------------------------------------------------------------------------
# Data sales
# --------------------------------------------------------------------------


def campaigns_for_sale_to(user) -> QuerySet[Campaign]:
    """Other labs' campaigns whose data is for sale (drafts hold no data yet), newest first."""
    return (
        Campaign.objects.filter(data_for_sale=True).exclude(status=Campaign.Status.DRAFT)
        .exclude(lab__members=user).select_related("lab").order_by("-created_at", "-id")
    )


def purchases_for_user(user) -> QuerySet[DataPurchase]:
    """Purchases made by the labs ``user`` is a member of, newest first."""
    return (
        DataPurchase.objects.filter(buyer__members=user).select_related("campaign", "campaign__lab", "export")
        .distinct().order_by("-created_at", "-id")
    )


def purchase_for_lab_member(*, user, purchase_id: int) -> DataPurchase:
    """A purchase of one of ``user``'s labs; 404 otherwise, so existence never leaks."""
    purchase = purchases_for_user(user).filter(pk=purchase_id).first()
    if purchase is None:
        from django.http import Http404

        raise Http404("No such purchase.")
    return purchase


def campaign_sales(*, campaign: Campaign) -> dict[str, int]:
    """What a campaign's data has sold for: purchases, price shared, fees, still in escrow (buyers not named)."""
    figures = DataPurchase.objects.filter(campaign=campaign).aggregate(
        purchases=Count("id"),
        shared=Sum("paid_total", filter=Q(state=DataPurchase.State.SETTLED)),
        fees=Sum("fee", filter=Q(state=DataPurchase.State.SETTLED)),
        escrowed=Sum("price", filter=Q(state=DataPurchase.State.ESCROWED)),
        refunded=Count("id", filter=Q(state=DataPurchase.State.REFUNDED)),
    )
    return {k: int(v or 0) for k, v in figures.items()}


# --------------------------------------------------------------------------
# Reconciliation
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    what: str
    expected: int
    found: int


def ledger_differences() -> list[Difference]:
    """Every way the cached figures disagree with the entries; empty when the ledger is sound.

    Checks that each balance equals the sum of its entries, that each
    transaction sums to zero, that all balances together sum to zero
    (nothing created or lost), that no balance but the external one is
    negative, and that pending unbonding requests add up to the unbonding
    balances.
    """
    out: list[Difference] = []
    sums = dict(LedgerEntry.objects.values("account_id").annotate(total=Sum("amount")).order_by()
                .values_list("account_id", "total"))
    grand = 0
    for account_id, kind, balance, expert_id, lab_id, campaign_id in Account.objects.values_list(
        "id", "kind", "balance", "expert_id", "lab_id", "campaign_id"
    ).order_by("id"):
        grand += balance
        expected = int(sums.get(account_id) or 0)
        label = f"account {account_id} ({kind}:{expert_id or lab_id or campaign_id or '-'})"
        if balance != expected:
            out.append(Difference(f"{label} balance", expected, balance))
        if kind != Account.Kind.EXTERNAL and balance < 0:
            out.append(Difference(f"{label} is negative", 0, balance))
    if grand != 0:
        out.append(Difference("sum of all balances", 0, grand))
    for transaction_id, total in (
        LedgerEntry.objects.values("transaction_id").annotate(total=Sum("amount")).exclude(total=0).order_by()
        .values_list("transaction_id", "total")
    ):
        out.append(Difference(f"transaction {transaction_id} entries", 0, int(total)))
    for transaction_id in (
        LedgerTransaction.objects.annotate(n=Count("entries")).filter(n__lt=2).values_list("id", flat=True)
    ):
        out.append(Difference(f"transaction {transaction_id} has fewer than two entries", 2, 0))
    pending = defaultdict(int)
    for expert_id, remaining in Unbonding.objects.filter(state=Unbonding.State.PENDING).values_list(
        "expert_id", "remaining"
    ):
        pending[expert_id] += remaining
    for expert_id, balance in Account.objects.filter(kind=Account.Kind.UNBONDING).values_list("expert_id", "balance"):
        if pending.get(expert_id, 0) != balance:
            out.append(Difference(f"expert {expert_id} pending unbonding vs unbonding balance",
                                  pending.get(expert_id, 0), balance))
    return out


def held_outstanding(*, campaign_id: int) -> int:
    """Rewards of the campaign's epochs still on hold: they sit in escrow, reserved until released or forfeited."""
    return EpochReward.objects.filter(
        epoch__campaign_id=campaign_id, hold_state=EpochReward.HoldState.HELD,
    ).aggregate(total=Sum("amount"))["total"] or 0
