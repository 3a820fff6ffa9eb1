"""A stateful property test of the whole token economy.

Random sequences of top-ups, funding, bonding, unbonding, releases,
slashes, settlements, reversals and replayed idempotency keys must keep
the ledger sound after every step: all balances (external included) sum to
zero, no balance but the external one is negative, every cached balance
equals its entries, and a replay moves nothing.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from annotations.services import ServiceError
from rewards import ledger, services, settlement
from rewards.models import Account, Epoch, LedgerTransaction
from rewards.selectors import ledger_differences
from tests import factories

pytestmark = pytest.mark.django_db
TOKEN = 1_000_000
amounts = st.integers(min_value=1, max_value=50 * TOKEN)


def balances() -> dict[int, int]:
    """Non-zero balances (accounts are opened lazily, with nothing in them)."""
    return dict(Account.objects.exclude(balance=0).values_list("id", "balance"))


class TokenEconomy(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.moderator = factories.rewards_moderator()
        self.lab = factories.LabFactory()
        self.campaign = factories.CampaignFactory(lab=self.lab, reward_per_judgment=TOKEN + 3, min_stake=0)
        self.experts = [factories.ExpertFactory() for _ in range(3)]
        for expert in self.experts:
            factories.expert_deposit(expert, 20 * TOKEN)
        services.lab_topup(lab=self.lab, amount=200 * TOKEN, reference="opening", actor=self.moderator)
        services.campaign_fund(campaign=self.campaign, amount=100 * TOKEN, actor=None)
        self.base = timezone.now() - timedelta(days=400)
        self.epochs = 0
        self.topups = 0
        self.slashes = 0

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    def refused(self, fn, **kwargs) -> bool:
        """Call a service; a refusal must leave every balance as it was."""
        before = balances()
        try:
            fn(**kwargs)
        except ServiceError:
            assert balances() == before
            return True
        return False

    @rule(amount=amounts, replay=st.booleans())
    def top_up(self, amount, replay):
        if not replay:
            self.topups += 1
        self.refused(services.lab_topup, lab=self.lab, amount=amount, reference=f"dep-{self.topups}",
                     actor=self.moderator)

    @rule(amount=amounts)
    def fund(self, amount):
        self.refused(services.campaign_fund, campaign=self.campaign, amount=amount, actor=None)

    @rule(k=st.integers(0, 2), amount=amounts)
    def bond(self, k, amount):
        self.refused(services.stake_bond, expert=self.experts[k], amount=amount)

    @rule(k=st.integers(0, 2), amount=amounts)
    def unbond(self, k, amount):
        self.refused(services.stake_unbond, expert=self.experts[k], amount=amount)

    @rule()
    def release(self):
        services.unbonding_release_due(now=timezone.now() + timedelta(days=30))

    @rule(k=st.integers(0, 2), fraction=st.sampled_from([0.0, 0.1, 0.5, 1.0]), replay=st.booleans())
    def slash(self, k, fraction, replay):
        if not replay:
            self.slashes += 1
        services.stake_slash(expert=self.experts[k], fraction=fraction, key=f"s-{k}-{self.slashes}", reason="test")

    @rule(styles=st.lists(st.sampled_from(["truth", "truth", "contrarian", "absent"]), min_size=3, max_size=3),
          wallets=st.lists(st.booleans(), min_size=3, max_size=3))
    def settle(self, styles, wallets):
        start = self.base + timedelta(days=self.epochs)
        epoch = Epoch.objects.create(campaign=self.campaign, index=self.epochs, starts_at=start,
                                     ends_at=start + timedelta(days=1))
        self.epochs += 1
        for expert, has_wallet in zip(self.experts, wallets):
            expert.wallet_address = factories.wallet(expert.pk) if has_wallet else ""
            expert.save(update_fields=["wallet_address"])
        for k in range(2):
            task = factories.TaskFactory(campaign=self.campaign)
            truth = [1, 2] if k else [2, 1]
            for expert, style in zip(self.experts, styles):
                if style != "absent":
                    ranks = truth if style == "truth" else truth[::-1]
                    factories.rated_judgment(task=task, expert=expert, ranks=list(ranks),
                                             submitted_at=start + timedelta(hours=1))
        escrow_before = ledger.escrow_account(self.campaign).balance
        settled = settlement.epoch_settle(epoch_id=epoch.pk)
        assert settled.paid_total + settled.dust + settled.retained == settled.budget
        assert escrow_before - ledger.escrow_account(self.campaign).balance == settled.paid_total + settled.dust
        # Settling again pays nobody twice.
        before = balances()
        settlement.epoch_settle(epoch_id=epoch.pk)
        assert balances() == before

    @rule(data=st.data())
    def reverse(self, data):
        kinds = sorted(set(LedgerTransaction.objects.values_list("kind", flat=True)))
        kind = data.draw(st.sampled_from(kinds))  # every kind present, even the irreversible ones
        ids = list(LedgerTransaction.objects.filter(kind=kind).values_list("id", flat=True))
        if ids:
            original = LedgerTransaction.objects.get(pk=data.draw(st.sampled_from(ids)))
            self.refused(services.transaction_reverse, original=original, actor=self.moderator)

    @rule(data=st.data())
    def replay_a_posted_key(self, data):
        ids = list(LedgerTransaction.objects.values_list("id", flat=True))
        if not ids:
            return
        row = LedgerTransaction.objects.get(pk=data.draw(st.sampled_from(ids)))
        posting = ledger.Posting(
            key=row.idempotency_key, kind=row.kind, entries=tuple(row.entries.values_list("account_id", "amount")),
            memo=row.memo, reverses_id=row.reverses_id,
        )
        before = balances()
        [result] = ledger.ledger_post_batch(postings=[posting])
        assert (result.created, result.transaction_id) == (False, row.pk)
        assert balances() == before

    @invariant()
    def money_is_conserved(self):
        assert (Account.objects.aggregate(total=Sum("balance"))["total"] or 0) == 0

    @invariant()
    def no_balance_but_external_is_negative(self):
        assert not Account.objects.exclude(kind=Account.Kind.EXTERNAL).filter(balance__lt=0).exists()

    @invariant()
    def balances_reconcile(self):
        assert ledger_differences() == []


def test_the_ledger_stays_sound_under_random_operations():
    run_state_machine_as_test(
        TokenEconomy,
        settings=settings(
            max_examples=40, stateful_step_count=25, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
