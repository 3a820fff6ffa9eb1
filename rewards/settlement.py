"""Epochs and their settlement: escrow -> experts, dust -> treasury, slashes, Merkle claims.

Settlement is idempotent and crash-safe by construction:

1. *Plan* (one database transaction): the epoch goes open -> settling and
   every expert's figures and reward are stored (``EpochReward``), with the
   Merkle distribution of the on-chain claims. The plan is computed once; a
   re-run reads it back, so a retry pays what the first run decided even if
   judgments are voided meanwhile.
2. *Pay* (one database transaction per chunk): each reward is a ledger
   transaction keyed ``epoch:<id>:reward:<expert id>``; an expert paid
   through a Merkle claim gets a second one, ``epoch:<id>:claim:<expert
   id>``, moving the reward on to the claim contract (external), in the
   same chunk, so the tokens are never both claimable on-chain and
   spendable here. A crash loses at most the chunk in flight; a re-run, or
   a concurrent run, finds the keys already posted and moves nothing.
3. *Finish*: the ledger is checked against the plan and the epoch becomes
   settled; the last epoch of a closed campaign returns the unspent escrow.

The maths is ``rewards.weighting`` (pure); the quality figures come from the
campaign's one quality model, ``annotations.quality.selectors.rater_epoch_quality``
(agreement with the reliability-weighted consensus, the person's gold record).
"""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from annotations.models import Campaign, Expert, Judgment
from annotations.quality.selectors import RaterEpochQuality, rater_epoch_quality
from annotations.services import ServiceError
from datadao.jobs import job_queue
from datavalue.models import DataValue
from rewards import holds, ledger, selectors, services
from rewards.bulk import insert_rows
from rewards.keys import claim_key, reward_key
from rewards.merkle import build_distribution
from rewards.models import Account, Epoch, EpochClaim, EpochReward, LedgerEntry, LedgerTransaction, Slash
from rewards.weighting import data_value_multiplier, settle_epoch_math, time_weighted_stake, wilson_upper_bound

Kind = LedgerTransaction.Kind

# Slash on gold accuracy only with at least this many gold answers in the person's record.
SLASH_MIN_GOLD = 20


def stake_reference(campaign: Campaign) -> int:
    """s_half of the stake bonus: the campaign's minimum stake, or the platform's minimum bond when that is 0,
    so stake weighting is never silently off."""
    return campaign.min_stake or settings.DATADAO_MIN_STAKE


def quality_z(confidence: float) -> float:
    """One-sided normal quantile of the confidence pay is judged with (0.875 -> 1.15)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(confidence) if confidence > 0.5 else 0.0


def _quality_inputs(epoch: Epoch) -> list[RaterEpochQuality]:
    """The quality model's figures for the epoch; agreement reaches back over the campaign's history epochs."""
    history = settings.DATADAO_QUALITY_HISTORY_EPOCHS
    earlier = Epoch.objects.filter(campaign_id=epoch.campaign_id, index__gte=epoch.index - history,
                                   index__lt=epoch.index).order_by("index").values_list("starts_at", flat=True).first()
    return rater_epoch_quality(campaign_id=epoch.campaign_id, starts_at=epoch.starts_at, ends_at=epoch.ends_at,
                               history_from=earlier)


class EpochNotReady(Exception):
    """An earlier epoch of the campaign is not settled yet (transient: retry later)."""


class SettlementIncomplete(ledger.LedgerError):
    """The ledger does not match the plan after paying; the epoch stays settling."""


def epoch_settle(*, epoch_id: int, now: datetime | None = None, chunk_size: int | None = None) -> Epoch:
    """Settle an epoch that has ended; safe to run twice, concurrently, or after a crash."""
    now = now or timezone.now()
    epoch = _plan(epoch_id, now)
    if epoch.state == Epoch.State.SETTLED:
        return epoch
    _pay(epoch, chunk_size or settings.DATADAO_SETTLEMENT_CHUNK)
    return _finish(epoch_id, now)


# --------------------------------------------------------------------------
# 1. Plan
# --------------------------------------------------------------------------


def _plan(epoch_id: int, now: datetime) -> Epoch:
    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().get(pk=epoch_id)
        if epoch.state != Epoch.State.OPEN:
            return epoch
        if epoch.ends_at > now:
            raise ServiceError(f"epoch {epoch.index} runs until {epoch.ends_at:%Y-%m-%d %H:%M}.", status=409)
        if Epoch.objects.filter(campaign_id=epoch.campaign_id, index__lt=epoch.index).exclude(
            state=Epoch.State.SETTLED
        ).exists():
            raise EpochNotReady(f"an epoch before {epoch.index} of campaign {epoch.campaign_id} is not settled.")
        campaign = Campaign.objects.get(pk=epoch.campaign_id)
        escrow = ledger.escrow_account(campaign)
        escrow_balance = ledger.lock_accounts([escrow.pk])[escrow.pk].balance
        # Payouts still on hold from earlier epochs are the experts' until a moderator decides: not spendable.
        escrow_balance = max(0, escrow_balance - selectors.held_outstanding(campaign_id=campaign.pk))

        inputs = _quality_inputs(epoch)
        expert_ids = [i.expert_id for i in inputs]
        n = np.array([i.n for i in inputs], dtype=np.int64)
        events = selectors.bonded_stake_events(expert_ids, epoch.starts_at, epoch.ends_at)
        stake = np.array(
            [time_weighted_stake(events[e], epoch.starts_at, epoch.ends_at) for e in expert_ids], dtype=np.float64,
        )
        gold_correct = np.array([i.gold_correct for i in inputs], dtype=np.int64)
        gold_n = np.array([i.gold_n for i in inputs], dtype=np.int64)
        # Slashed in this epoch: answered gold in it, and the person's gold record over enough answers is
        # clearly (the whole 95% interval) below the bar. A slashed expert earns nothing for the epoch.
        gold_now = np.array([i.gold_in_epoch for i in inputs], dtype=np.int64)
        slashed = (
            (gold_now > 0) & (gold_n >= SLASH_MIN_GOLD) & (wilson_upper_bound(gold_correct, gold_n) < campaign.gold_bar)
            if inputs else np.zeros(0, dtype=bool)
        )
        value_factor = _value_factors(campaign, expert_ids) if campaign.data_value_weighting and inputs else None
        # Quality-job flags (collusion, position bias, speed, copied rationale) hold the payout for a moderator.
        reasons = holds.hold_reasons_for(campaign_id=campaign.pk, expert_ids=expert_ids) if inputs else {}
        maths = settle_epoch_math(
            reward_per_judgment=campaign.reward_per_judgment,
            available=escrow_balance,
            n=n,
            matches=[i.weighted_matches for i in inputs],
            n_compared=[i.weighted_compared for i in inputs],
            f_rater=[i.f_rater for i in inputs],
            f_consensus=[i.f_consensus for i in inputs],
            gold_correct=gold_correct,
            gold_n=gold_n,
            stake=stake,
            s_half=float(stake_reference(campaign)),
            q_min=campaign.q_min,
            beta=campaign.stake_beta,
            gold_weight=campaign.gold_weight,
            z=quality_z(campaign.pay_confidence),
            excluded=slashed,
            value_factor=value_factor,
            held=[bool(reasons.get(e)) for e in expert_ids],
        ) if inputs else None
        payouts = maths.payouts if maths else []
        budget = maths.budget if maths else 0
        paid_total = sum(payouts)
        # Nobody cleared the quality bar: the budget stays in escrow for the lab.
        dust, retained = (maths.dust, 0) if paid_total else (0, budget)
        held = [bool(payouts[k] > 0 and reasons.get(e)) for k, e in enumerate(expert_ids)]
        held_total = sum(p for p, h in zip(payouts, held) if h)
        wallets = selectors.expert_wallets(expert_ids)

        insert_rows(
            EpochReward,
            ["epoch_id", "expert_id", "judgments", "matches", "compared", "gold_n", "gold_correct", "agreement",
             "quality", "quality_low", "stake", "stake_factor", "weight", "value_factor", "amount", "wallet_address",
             "slashed", "hold_state", "hold_reasons"],
            [
                (epoch.pk, q.expert_id, q.n, q.matches, q.n_compared, q.gold_n, q.gold_correct,
                 float(maths.agreement[k]), float(maths.quality[k]), float(maths.quality_low[k]), float(stake[k]),
                 float(maths.stake_multiplier[k]), float(maths.weight[k]),
                 float(value_factor[k]) if value_factor is not None else 1.0,
                 payouts[k], wallets.get(q.expert_id, "") if payouts[k] else "", bool(slashed[k]),
                 EpochReward.HoldState.HELD if held[k] else EpochReward.HoldState.NONE,
                 reasons.get(q.expert_id, []) if held[k] else [])
                for k, q in enumerate(inputs)
            ],
        )
        # Held payouts stay out of the Merkle distribution; a release pays them to the available balance.
        claims_total = _publish_claims(
            epoch, [0 if h else p for p, h in zip(payouts, held)], expert_ids, wallets)

        epoch.budget = budget
        epoch.paid_total = paid_total - held_total
        epoch.held_total = held_total
        epoch.dust = dust
        epoch.retained = retained
        epoch.judgment_count = int(n.sum())
        epoch.experts_paid = sum(1 for p, h in zip(payouts, held) if p > 0 and not h)
        epoch.claims_total = claims_total
        epoch.state = Epoch.State.SETTLING
        epoch.planned_at = now
        epoch.save()
        return epoch


def _value_factors(campaign: Campaign, expert_ids: list[int]) -> np.ndarray:
    """Data-value multiplier per expert (``weighting.data_value_multiplier``), from the campaign's latest
    ``DataValue`` rows as the plan reads them: value per pair judgment, normalised by the mean positive
    value over every valued rater of the campaign (not only this epoch's), NaN for raters not valued yet."""
    per_pair = dict(DataValue.objects.filter(campaign=campaign).values_list("expert_id", "mean"))
    if not per_pair:
        return np.ones(len(expert_ids))
    ids = list(per_pair)
    everyone = data_value_multiplier(np.array([per_pair[e] for e in ids], dtype=np.float64),
                                     cap=campaign.data_value_cap)
    factor = dict(zip(ids, everyone.tolist()))
    return np.array([factor.get(e, 1.0) for e in expert_ids], dtype=np.float64)


def _publish_claims(epoch: Epoch, payouts: list[int], expert_ids: list[int], wallets: dict[int, str]) -> int:
    """Store the Merkle root and every address's claim (two experts sharing an address share a claim)."""
    by_address: dict[str, int] = {}
    for expert_id, amount in zip(expert_ids, payouts):
        address = wallets.get(expert_id)
        if amount > 0 and address:
            by_address[address] = by_address.get(address, 0) + amount
    if not by_address:
        return 0
    distribution = build_distribution(by_address)
    insert_rows(
        EpochClaim,
        ["epoch_id", "address", "index", "amount", "proof"],
        [
            (epoch.pk, address, claim["index"], claim["amount"],
             b"".join(bytes.fromhex(node[2:]) for node in claim["proof"]))
            for address, claim in distribution.claims.items()
        ],
    )
    epoch.merkle_root = distribution.root
    return distribution.token_total


# --------------------------------------------------------------------------
# 2. Pay
# --------------------------------------------------------------------------


def _pay(epoch: Epoch, chunk_size: int) -> None:
    campaign = Campaign.objects.get(pk=epoch.campaign_id)
    # A reward put on hold is never paid here: a moderator's release posts it (under the same key), a forfeit
    # leaves it in escrow. Released ones are therefore left out too, whatever order release and a re-run take.
    rewards = list(
        EpochReward.objects.filter(epoch=epoch, amount__gt=0, hold_state=EpochReward.HoldState.NONE)
        .order_by("expert_id").values_list("expert_id", "amount", "wallet_address")
    )
    posted = set(
        LedgerTransaction.objects.filter(epoch=epoch, kind=Kind.REWARD).values_list("idempotency_key", flat=True)
    )
    todo = [r for r in rewards if reward_key(epoch.pk, r[0]) not in posted]
    if todo:
        escrow = ledger.escrow_account(campaign).pk
        external = ledger.external_account().pk
        available = ledger.expert_accounts_bulk([r[0] for r in todo], Account.Kind.AVAILABLE)
        memo = f"Epoch {epoch.index} reward, {campaign.name}"[:500]
        claim_memo = f"Epoch {epoch.index} reward sent to its on-chain claim"
        for start in range(0, len(todo), chunk_size):
            postings = []
            for expert_id, amount, address in todo[start : start + chunk_size]:
                postings.append(ledger.Posting(
                    key=reward_key(epoch.pk, expert_id), kind=Kind.REWARD,
                    entries=((escrow, -amount), (available[expert_id], amount)),
                    memo=memo, campaign_id=campaign.pk, epoch_id=epoch.pk,
                ))
                if address:
                    postings.append(ledger.Posting(
                        key=claim_key(epoch.pk, expert_id), kind=Kind.CLAIM,
                        entries=((available[expert_id], -amount), (external, amount)),
                        memo=f"{claim_memo} ({address})", campaign_id=campaign.pk, epoch_id=epoch.pk,
                    ))
            _post_chunk(postings)

    if epoch.dust:
        ledger.ledger_post(
            key=f"epoch:{epoch.pk}:dust", kind=Kind.DUST,
            entries=[(ledger.escrow_account(campaign), -epoch.dust), (ledger.treasury_account(), epoch.dust)],
            memo=f"Epoch {epoch.index} rounding dust", campaign=campaign, epoch=epoch,
        )

    # Slashes lock stake accounts and the treasury: their own transactions,
    # never inside a reward chunk, so locks are always taken in one pk-ordered go.
    slashed_ids = set(EpochReward.objects.filter(epoch=epoch, slashed=True).values_list("expert_id", flat=True))
    slashed_ids -= set(Slash.objects.filter(epoch=epoch).values_list("expert_id", flat=True))
    for expert in Expert.objects.filter(pk__in=slashed_ids).order_by("pk"):
        services.stake_slash(
            expert=expert, fraction=campaign.slash_fraction, key=f"epoch:{epoch.pk}:slash:{expert.pk}",
            reason=f"gold accuracy below {campaign.gold_bar:.0%} in epoch {epoch.index} of {campaign.name}",
            campaign=campaign, epoch=epoch,
        )


def _post_chunk(postings: list[ledger.Posting]) -> None:
    """One chunk, one database transaction (its own commit)."""
    ledger.ledger_post_batch(postings=postings)


# --------------------------------------------------------------------------
# 3. Finish
# --------------------------------------------------------------------------


def _finish(epoch_id: int, now: datetime) -> Epoch:
    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().get(pk=epoch_id)
        if epoch.state == Epoch.State.SETTLED:
            return epoch
        # The plan's paid_total and experts_paid leave out the rewards it put on hold; a moderator may already
        # have released some (posted under their reward keys), so their postings are left out of the count too.
        on_hold = dict(
            EpochReward.objects.filter(epoch=epoch, amount__gt=0).exclude(hold_state=EpochReward.HoldState.NONE)
            .values_list("expert_id", "hold_state")
        )
        unpaid = [reward_key(epoch.pk, e) for e, state in on_hold.items() if state != EpochReward.HoldState.RELEASED]
        if unpaid and LedgerTransaction.objects.filter(idempotency_key__in=unpaid).exists():
            raise SettlementIncomplete(f"epoch {epoch.pk}: a reward on hold or forfeited was paid.")
        paid = LedgerEntry.objects.filter(
            transaction__epoch=epoch, transaction__kind=Kind.REWARD, amount__gt=0,
        ).exclude(
            transaction__idempotency_key__in=[reward_key(epoch.pk, e) for e in on_hold],
        ).aggregate(total=Sum("amount"), n=Count("id"))
        if (paid["total"] or 0) != epoch.paid_total or paid["n"] != epoch.experts_paid:
            raise SettlementIncomplete(
                f"epoch {epoch.pk}: ledger pays {paid['total'] or 0} to {paid['n']} experts; "
                f"the plan says {epoch.paid_total} to {epoch.experts_paid}."
            )
        if epoch.dust and not LedgerTransaction.objects.filter(idempotency_key=f"epoch:{epoch.pk}:dust").exists():
            raise SettlementIncomplete(f"epoch {epoch.pk}: dust not posted.")
        epoch.state = Epoch.State.SETTLED
        epoch.settled_at = now
        epoch.save(update_fields=["state", "settled_at"])
        campaign = Campaign.objects.get(pk=epoch.campaign_id)
        if campaign.status == Campaign.Status.CLOSED and not campaign.epochs.exclude(
            state=Epoch.State.SETTLED
        ).exists():
            services.campaign_escrow_refund(campaign=campaign)
        return epoch


# --------------------------------------------------------------------------
# Epoch lifecycle
# --------------------------------------------------------------------------


def _epoch_length() -> timedelta:
    return timedelta(days=settings.DATADAO_EPOCH_DAYS)


def campaign_epochs_roll(*, campaign: Campaign, now: datetime | None = None) -> list[int]:
    """Open, end and cut epochs of one campaign; returns the ids of epochs waiting for settlement.

    Epochs tile time from the campaign's opening: each ends after
    ``DATADAO_EPOCH_DAYS``, early when its judgments would spend the whole
    escrow (closed by budget), or at the campaign's close.
    """
    now = now or timezone.now()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.opened_at is None:
            return []
        last = campaign.epochs.order_by("-index").first()
        if last is None:
            last = Epoch.objects.create(
                campaign=campaign, index=0, starts_at=campaign.opened_at,
                ends_at=campaign.opened_at + _epoch_length(),
            )
        if campaign.status == Campaign.Status.CLOSED:
            cutoff = campaign.closed_at or now
            if last.state == Epoch.State.OPEN and last.ends_at > cutoff:
                last.ends_at = max(cutoff, last.starts_at + timedelta(microseconds=1))
                last.save(update_fields=["ends_at"])
        else:
            while last.ends_at <= now:
                last = Epoch.objects.create(
                    campaign=campaign, index=last.index + 1, starts_at=last.ends_at,
                    ends_at=last.ends_at + _epoch_length(),
                )
            if _budget_spent(campaign, last, now):
                last.ends_at = now
                last.save(update_fields=["ends_at"])
                Epoch.objects.create(
                    campaign=campaign, index=last.index + 1, starts_at=now, ends_at=now + _epoch_length(),
                )
        return list(
            campaign.epochs.filter(
                Q(state=Epoch.State.OPEN, ends_at__lte=now) | Q(state=Epoch.State.SETTLING)
            ).order_by("index").values_list("id", flat=True)
        )


def _budget_spent(campaign: Campaign, epoch: Epoch, now: datetime) -> bool:
    if campaign.reward_per_judgment <= 0 or epoch.starts_at >= now:
        return False
    escrow = selectors.escrow_balance(campaign=campaign)
    if escrow <= 0:
        return False
    accepted = Judgment.objects.filter(
        campaign=campaign, voided=False, submitted_at__gte=epoch.starts_at, submitted_at__lt=now,
    ).count()
    return campaign.reward_per_judgment * accepted >= escrow


def epochs_roll(*, now: datetime | None = None) -> list[int]:
    """Roll every campaign that is running or still has epochs to settle; returns epoch ids to settle."""
    now = now or timezone.now()
    campaign_ids = set(
        Campaign.objects.filter(status__in=[Campaign.Status.OPEN, Campaign.Status.PAUSED]).values_list("id", flat=True)
    ) | set(Epoch.objects.exclude(state=Epoch.State.SETTLED).values_list("campaign_id", flat=True))
    due: list[int] = []
    for campaign in Campaign.objects.filter(pk__in=campaign_ids).order_by("pk"):
        due.extend(campaign_epochs_roll(campaign=campaign, now=now))
    return due


def on_campaign_close(campaign: Campaign) -> None:
    """Close hook: end the running epoch now, settle what is due, then return unspent escrow.

    Runs inside the campaign's close transaction. With epochs left to
    settle, the refund waits for the last of them (``_finish``), so the
    experts' share of the escrow is never handed back to the lab.
    """
    due = campaign_epochs_roll(campaign=campaign, now=campaign.closed_at)
    if not campaign.epochs.exclude(state=Epoch.State.SETTLED).exists():
        services.campaign_escrow_refund(campaign=campaign)
        return
    for epoch_id in due:
        transaction.on_commit(lambda epoch_id=epoch_id: job_queue("rewards.settle_epoch", epoch_id))
