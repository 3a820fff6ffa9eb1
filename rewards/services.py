"""Writes on the rewards side: funding, escrow, staking and slashing.

Every service moves money only through ``rewards.ledger`` and turns ledger
refusals into a ``ServiceError`` a person can act on. A service that reads a
balance before deciding what to post locks the accounts first (in
primary-key order, like the posting service), so the decision and the
posting see the same balance.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations import roles
from annotations.models import Campaign, Expert, Lab
from annotations.services import ServiceError
from rewards import ledger, selectors
from rewards.amounts import format_amount
from rewards.ledger import IdempotencyConflict, InsufficientFunds, LedgerError, Posted
from rewards.models import Account, LedgerEntry, LedgerTransaction, Slash, Unbonding

Kind = LedgerTransaction.Kind


def _positive_amount(amount) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ServiceError("the amount must be a whole number of base units.", field="amount")
    if amount <= 0:
        raise ServiceError("the amount must be positive.", field="amount")
    return amount


def _can_moderate(user) -> bool:
    return bool(user and user.is_authenticated and (user.is_superuser or roles.is_moderator(user)))


def _ledger_call(fn, *, insufficient: str, conflict: str = "", **kwargs):
    """``conflict`` words a reused idempotency key for the caller; the ledger's own key is internal."""
    try:
        return fn(**kwargs)
    except InsufficientFunds as exc:
        raise ServiceError(
            f"{insufficient}: the balance is {format_amount(exc.account.balance)}, "
            f"this needs {format_amount(exc.needed)}.",
            field="amount",
        ) from exc
    except IdempotencyConflict as exc:
        raise ServiceError(
            conflict or "this request was already made with different amounts.", field="idempotency_key", status=409,
        ) from exc


# --------------------------------------------------------------------------
# Labs and campaign escrow
# --------------------------------------------------------------------------


def _deposit_reference(reference: str) -> str:
    """A deposit's own reference (invoice, bank or on-chain transaction id): its idempotency key."""
    reference = (reference or "").strip()
    if not reference:
        raise ServiceError("give the deposit's reference (invoice or transaction id).", field="reference")
    return reference


def lab_topup(*, lab: Lab, amount: int, reference: str, actor) -> Posted:
    """Credit a lab with tokens it deposited (external -> lab). Moderators and admins only.

    ``reference`` is the deposit's own id (invoice, bank or on-chain
    transaction): it is the idempotency key, so the same deposit can never
    be credited twice, whoever clicks.
    """
    if not _can_moderate(actor):
        raise ServiceError("only moderators may top up lab accounts.", status=403)
    amount, reference = _positive_amount(amount), _deposit_reference(reference)
    return _ledger_call(
        ledger.ledger_post,
        insufficient="cannot top up",
        conflict=f"the deposit {reference!r} was already credited with a different amount.",
        key=f"topup:lab:{lab.pk}:{reference}",
        kind=Kind.TOPUP,
        entries=[(ledger.external_account(), -amount), (ledger.lab_account(lab), amount)],
        memo=f"Top-up, reference {reference}",
        created_by=actor,
    )


def expert_deposit(*, expert: Expert, amount: int, reference: str, actor) -> Posted:
    """Credit an expert with tokens deposited from outside (external -> available). Moderators and admins only.

    Like ``lab_topup``, the deposit's own reference is the idempotency key.
    """
    if not _can_moderate(actor):
        raise ServiceError("only moderators may credit deposits.", status=403)
    amount, reference = _positive_amount(amount), _deposit_reference(reference)
    return _ledger_call(
        ledger.ledger_post,
        insufficient="cannot credit the deposit",
        conflict=f"the deposit {reference!r} was already credited with a different amount.",
        key=f"deposit:expert:{expert.pk}:{reference}"[:200],
        kind=Kind.TOPUP,
        entries=[(ledger.external_account(), -amount), (ledger.expert_account(expert, Account.Kind.AVAILABLE), amount)],
        memo=f"Deposit, reference {reference}"[:500],
        created_by=actor,
    )


@dataclass(frozen=True)
class FundResult:
    posted: Posted
    amount: int
    lab_balance: int
    escrow_balance: int


def campaign_fund(*, campaign: Campaign, amount: int, actor, client_key: str | None = None) -> FundResult:
    """Move tokens from the campaign's lab to the campaign's escrow.

    ``client_key`` (the API's Idempotency-Key header) makes a retried
    request fund once; without it every call funds.
    """
    amount = _positive_amount(amount)
    if campaign.status == Campaign.Status.CLOSED:
        raise ServiceError("the campaign is closed; it takes no more funds.", field="status", status=409)
    key = f"fund:{campaign.pk}:{client_key or uuid.uuid4().hex}"
    lab_acct = ledger.lab_account(campaign.lab_id)
    escrow = ledger.escrow_account(campaign)
    posted = _ledger_call(
        ledger.ledger_post,
        insufficient="the lab's balance is too low; top it up first",
        conflict=f"Idempotency-Key {client_key!r} was already used for a different funding of this campaign.",
        key=key[:200],
        kind=Kind.FUND,
        entries=[(lab_acct, -amount), (escrow, amount)],
        memo=f"Funding of campaign {campaign.name}"[:500],
        campaign=campaign,
        created_by=actor,
    )
    balances = dict(Account.objects.filter(pk__in=[lab_acct.pk, escrow.pk]).values_list("id", "balance"))
    return FundResult(posted, amount, balances[lab_acct.pk], balances[escrow.pk])


def campaign_escrow_refund(*, campaign: Campaign) -> Posted | None:
    """Return what is left in a campaign's escrow to its lab.

    Keyed on the escrow's latest entry, so running it twice refunds once,
    while money that lands in escrow later (a reversed reward, a forfeited
    hold) can still be refunded by running it again. Payouts on hold stay.
    """
    with transaction.atomic():
        escrow = ledger.escrow_account(campaign)
        lab_acct = ledger.lab_account(campaign.lab_id)
        locked = ledger.lock_accounts([escrow.pk, lab_acct.pk])
        # Payouts on hold sit in escrow until a moderator releases (pays) or forfeits (refunds) them.
        balance = locked[escrow.pk].balance - selectors.held_outstanding(campaign_id=campaign.pk)
        if balance <= 0:
            return None
        last_entry = LedgerEntry.objects.filter(account=escrow).order_by("-id").values_list("id", flat=True).first()
        return ledger.ledger_post(
            key=f"refund:{campaign.pk}:after:{last_entry}",
            kind=Kind.REFUND,
            entries=[(escrow, -balance), (lab_acct, balance)],
            memo=f"Unspent escrow of campaign {campaign.name} returned"[:500],
            campaign=campaign,
        )


def campaign_escrow_sweep(*, campaign: Campaign) -> Posted | None:
    """Return to the lab money that lands in a closed campaign's escrow after its last epoch settled.

    A closed campaign takes no funds and has no settlement left to spend its
    escrow, so anything posted there later (a clawed-back reward, a forfeited
    payout hold) would stay forever. Call it after such a posting, in the same
    database transaction. While the campaign runs, or an epoch is still to
    settle, it does nothing: that settlement refunds the rest itself. Safe to
    run twice (``campaign_escrow_refund`` is keyed on the escrow's latest entry).
    """
    from rewards.models import Epoch

    with transaction.atomic():
        status = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first()
        if status != Campaign.Status.CLOSED:
            return None
        if Epoch.objects.filter(campaign_id=campaign.pk).exclude(state=Epoch.State.SETTLED).exists():
            return None
        return campaign_escrow_refund(campaign=campaign)


# --------------------------------------------------------------------------
# Staking
# --------------------------------------------------------------------------


def _min_stake() -> int:
    return settings.DATADAO_MIN_STAKE


def stake_bond(*, expert: Expert, amount: int, client_key: str | None = None) -> Posted:
    """Bond tokens (available -> bonded). The bonded total must reach the platform minimum."""
    amount = _positive_amount(amount)
    if expert.state in (Expert.State.SUSPENDED, Expert.State.REJECTED):
        raise ServiceError("your account is suspended; you cannot stake.", status=403)
    key = f"bond:{expert.pk}:{client_key or uuid.uuid4().hex}"[:200]
    with transaction.atomic():
        available = ledger.expert_account(expert, Account.Kind.AVAILABLE)
        bonded = ledger.expert_account(expert, Account.Kind.BONDED)
        locked = ledger.lock_accounts([available.pk, bonded.pk])
        # A retried request skips the checks: the posting returns its first transaction.
        if not LedgerTransaction.objects.filter(idempotency_key=key).exists():
            if locked[available.pk].balance < amount:
                raise ServiceError(
                    f"insufficient balance: you have {format_amount(locked[available.pk].balance)} available.",
                    field="amount",
                )
            if locked[bonded.pk].balance + amount < _min_stake():
                raise ServiceError(
                    f"below minimum: a stake must be at least {format_amount(_min_stake())}.", field="amount",
                )
        return _ledger_call(
            ledger.ledger_post,
            insufficient="insufficient balance",
            conflict=f"Idempotency-Key {client_key!r} was already used for a different stake.",
            key=key,
            kind=Kind.BOND,
            entries=[(available, -amount), (bonded, amount)],
            memo="Stake bonded",
        )


def stake_unbond(*, expert: Expert, amount: int, now: datetime | None = None) -> Unbonding:
    """Start unbonding (bonded -> unbonding); released to available after the cooldown.

    The stake stays slashable while it cools down, so leaving cannot dodge
    a slash for work already done. One cooldown at a time.
    """
    amount = _positive_amount(amount)
    now = now or timezone.now()
    try:
        with transaction.atomic():
            bonded = ledger.expert_account(expert, Account.Kind.BONDED)
            unbonding_acct = ledger.expert_account(expert, Account.Kind.UNBONDING)
            locked = ledger.lock_accounts([bonded.pk, unbonding_acct.pk])
            pending = Unbonding.objects.filter(expert=expert, state=Unbonding.State.PENDING).first()
            if pending is not None:
                raise ServiceError(
                    f"already unbonding: {format_amount(pending.remaining)} is released on "
                    f"{pending.releases_at:%Y-%m-%d %H:%M} UTC; wait for it before unbonding more.",
                    field="amount", status=409,
                )
            have = locked[bonded.pk].balance
            if amount > have:
                raise ServiceError(
                    f"insufficient balance: you have {format_amount(have)} bonded.", field="amount",
                )
            left = have - amount
            if 0 < left < _min_stake():
                raise ServiceError(
                    f"below minimum: unbond everything or keep at least {format_amount(_min_stake())} bonded.",
                    field="amount",
                )
            unbonding = Unbonding.objects.create(
                expert=expert, amount=amount, remaining=amount, requested_at=now,
                releases_at=now + timedelta(days=settings.DATADAO_UNBONDING_DAYS),
            )
            ledger.ledger_post(
                key=f"unbond:{unbonding.pk}",
                kind=Kind.UNBOND,
                entries=[(bonded, -amount), (unbonding_acct, amount)],
                memo=f"Unbonding; released {unbonding.releases_at:%Y-%m-%d}",
            )
            return unbonding
    except IntegrityError as exc:
        if Unbonding.objects.filter(expert=expert, state=Unbonding.State.PENDING).exists():
            raise ServiceError("already unbonding.", field="amount", status=409) from exc
        raise


def unbonding_release(*, unbonding_id: int, now: datetime | None = None) -> bool:
    """Release one finished cooldown to the available balance; False if not due or already done."""
    now = now or timezone.now()
    with transaction.atomic():
        expert_id = Unbonding.objects.filter(pk=unbonding_id).values_list("expert_id", flat=True).first()
        if expert_id is None:
            return False
        unbonding_acct = ledger.expert_account(expert_id, Account.Kind.UNBONDING)
        available = ledger.expert_account(expert_id, Account.Kind.AVAILABLE)
        ledger.lock_accounts([unbonding_acct.pk, available.pk])
        unbonding = Unbonding.objects.select_for_update().get(pk=unbonding_id)
        if unbonding.state != Unbonding.State.PENDING or unbonding.releases_at > now:
            return False
        if unbonding.remaining > 0:
            ledger.ledger_post(
                key=f"release:{unbonding.pk}",
                kind=Kind.RELEASE,
                entries=[(unbonding_acct, -unbonding.remaining), (available, unbonding.remaining)],
                memo="Unbonded stake released",
            )
        unbonding.state = Unbonding.State.RELEASED
        unbonding.released_at = now
        unbonding.save(update_fields=["state", "released_at"])
        return True


def unbonding_release_due(*, now: datetime | None = None) -> int:
    """Release every cooldown that has ended (the periodic job). Returns how many were released."""
    now = now or timezone.now()
    due = list(
        Unbonding.objects.filter(state=Unbonding.State.PENDING, releases_at__lte=now)
        .order_by("releases_at").values_list("id", flat=True)
    )
    return sum(1 for unbonding_id in due if unbonding_release(unbonding_id=unbonding_id, now=now))


def _exact_fraction(value) -> Fraction:
    """A campaign's float fraction as the decimal a person typed (0.1 is 1/10, not 0.1000000000000000055)."""
    try:
        fraction = Fraction(Decimal(str(value)))
    except (InvalidOperation, ValueError) as exc:
        raise ServiceError("the slash fraction must be a number.", field="fraction") from exc
    if not 0 <= fraction <= 1:
        raise ServiceError("the slash fraction must be between 0 and 1.", field="fraction")
    return fraction


def stake_slash(
    *, expert: Expert, fraction, key: str, reason: str, campaign: Campaign | None = None, epoch=None,
    actor=None, now: datetime | None = None,
) -> Slash:
    """Take ``fraction`` of the expert's bonded and unbonding stake to the treasury, once per ``key``.

    Amounts are floor(stake x fraction), computed on the locked balances, so
    a slash never takes more than the fraction and never makes a balance
    negative. Running it again with the same key returns the first slash.
    """
    exact = _exact_fraction(fraction)
    now = now or timezone.now()
    with transaction.atomic():
        bonded = ledger.expert_account(expert, Account.Kind.BONDED)
        unbonding_acct = ledger.expert_account(expert, Account.Kind.UNBONDING)
        treasury = ledger.treasury_account()
        locked = ledger.lock_accounts([bonded.pk, unbonding_acct.pk, treasury.pk])
        existing = Slash.objects.filter(key=key).first()
        if existing is not None:
            return existing
        pending = (
            Unbonding.objects.select_for_update().filter(expert=expert, state=Unbonding.State.PENDING).first()
        )
        bonded_cut = locked[bonded.pk].balance * exact.numerator // exact.denominator
        unbonding_cut = pending.remaining * exact.numerator // exact.denominator if pending else 0
        posted = None
        if bonded_cut + unbonding_cut > 0:
            entries = [(treasury, bonded_cut + unbonding_cut)]
            if bonded_cut:
                entries.append((bonded, -bonded_cut))
            if unbonding_cut:
                entries.append((unbonding_acct, -unbonding_cut))
            posted = ledger.ledger_post(
                key=f"slash:{key}"[:200], kind=Kind.SLASH, entries=entries, memo=f"Slash: {reason}"[:500],
                campaign=campaign, epoch=epoch, created_by=actor,
            )
        if unbonding_cut:
            pending.remaining -= unbonding_cut
            pending.save(update_fields=["remaining"])
        return Slash.objects.create(
            key=key, expert=expert, campaign=campaign, epoch=epoch,
            fraction=Decimal(exact.numerator) / Decimal(exact.denominator),
            bonded_amount=bonded_cut, unbonding_amount=unbonding_cut,
            unbonding=pending if unbonding_cut else None, reason=reason[:500],
            transaction_id=posted.transaction_id if posted else None, created_at=now,
        )


def slash_reverse(*, slash: Slash, actor=None, memo: str = "") -> Posted | None:
    """Give a slash back (e.g. a dispute upheld): the stake returns where it was taken from.

    Stake cut from a cooldown returns to that cooldown while it is pending;
    if it has been released meanwhile, the restored part is released at once.
    """
    if slash.transaction_id is None:
        return None
    with transaction.atomic():
        expert = slash.expert
        accounts = [
            ledger.expert_account(expert, Account.Kind.BONDED),
            ledger.expert_account(expert, Account.Kind.UNBONDING),
            ledger.expert_account(expert, Account.Kind.AVAILABLE),
            ledger.treasury_account(),
        ]
        ledger.lock_accounts(a.pk for a in accounts)
        original = LedgerTransaction.objects.get(pk=slash.transaction_id)
        posted = _ledger_call(
            ledger.ledger_reverse,
            insufficient="the treasury cannot return this slash",
            original=original,
            memo=memo or f"Slash reversed: {slash.reason}"[:500],
            created_by=actor,
            allow_kinds={Kind.SLASH},
        )
        if posted.created and slash.unbonding_amount:
            unbonding = Unbonding.objects.select_for_update().get(pk=slash.unbonding_id)
            if unbonding.state == Unbonding.State.PENDING:
                unbonding.remaining += slash.unbonding_amount
                unbonding.save(update_fields=["remaining"])
            else:
                ledger.ledger_post(
                    key=f"release:slash-reversal:{slash.pk}",
                    kind=Kind.RELEASE,
                    entries=[(accounts[1], -slash.unbonding_amount), (accounts[2], slash.unbonding_amount)],
                    memo="Restored stake released (its cooldown had ended)",
                )
        return posted


def transaction_reverse(*, original: LedgerTransaction, actor, memo: str = "") -> Posted:
    """A moderator's correction: post the reversing transaction (slashes also restore stake)."""
    if not _can_moderate(actor):
        raise ServiceError("only moderators may reverse ledger transactions.", status=403)
    if original.kind == Kind.SLASH:
        slash = Slash.objects.get(transaction=original)
        return slash_reverse(slash=slash, actor=actor, memo=memo)
    try:
        return _ledger_call(
            ledger.ledger_reverse, insufficient="cannot reverse", original=original, memo=memo, created_by=actor,
        )
    except LedgerError as exc:
        raise ServiceError(str(exc), status=409) from exc
