"""Attacks on the rewards, played through the real pipeline on a small campaign.

The fast twin of ``bench/incentive_bench.py``: the same engine
(``bench/incentive_sim.py``) leases with ``assignment_next``, submits with
``judgment_submit``, runs the consensus and quality jobs in-process and
settles the epoch with ``rewards.settlement``. Three small campaigns, one seed,
played once for the module: a mixed crowd (honest, random clickers,
position-biased clickers, a ring answering by a shared rule), and one
honest person's work on three accounts versus on one.

The orderings asserted are the design's (DESIGN.md, Rewards): honest work
is paid, clickers earn close to nothing, a ring earns less than honest
raters, and splitting oneself over accounts does not pay.
"""
from __future__ import annotations

import pytest

from bench import incentive_sim as sim

# The mixed crowd: ~450 judgments over 12 accounts, so honest accounts pass the bench's "enough work" (30).
MIXED_CONFIG = sim.RunConfig(tasks=120, gold=12, judgments=450, quality_every=150)
# One person's work: ~250 judgments over 9 accounts (the single account's tasks are doubled, see below).
SPLIT_CONFIG = sim.RunConfig(tasks=60, gold=10, judgments=250, quality_every=100)
SEED = 1
ENOUGH_WORK = sim.MIN_WORK
# Transactional: judgments' on-commit hooks (per-task consensus) must fire. The campaigns are played once, by
# the module fixture; the tests read its results.
pytestmark = pytest.mark.django_db(transaction=True)

MIXED = sim.Scenario("mixed", "5 honest, 2 random, 2 position-biased, 3-account ring", (
    sim.Cohort("honest", sim.HONEST, 5, honest_checks=True, honest_baseline=True),
    sim.Cohort("random", sim.RANDOM, 2),
    sim.Cohort("position", sim.POSITION, 2),
    sim.Cohort("ring", sim.RING, 3),
))
SPLIT = sim.Scenario("split", "6 honest + one p=0.8 person on 3 accounts", (
    sim.Cohort("honest", sim.HONEST, 6, honest_checks=True, honest_baseline=True),
    sim.Cohort("split", sim.HONEST, 3, accuracy=(0.8,)),
), task_scale=2)
SINGLE = sim.Scenario("single", "6 honest + that person's work on 1 account", (
    sim.Cohort("honest", sim.HONEST, 6, honest_checks=True, honest_baseline=True),
    sim.Cohort("single", sim.HONEST, 1, accuracy=(0.8,), turns=3, honest_checks=True),
), task_scale=2)  # twice the tasks, so the one account never runs out of work the three accounts did


# A ring that makes most of the raters: against its own consensus it looks right, so only gold and the
# ring test (errors where the others err) stand between it and the budget; the honest raters it outvotes
# must not be read as the ring. ~650 judgments over 10 accounts (65 each, as in the bench; at 40 each the
# ring test has too little evidence and part of such a ring escapes it: see bench/README.md).
MAJORITY_CONFIG = sim.RunConfig(tasks=160, gold=20, judgments=650, quality_every=150)
MAJORITY = sim.Scenario("majority", "4 honest + 6-account ring (the majority)", (
    sim.Cohort("honest", sim.HONEST, 4, honest_checks=True, honest_baseline=True),
    sim.Cohort("ring", sim.RING, 6),
))


@pytest.fixture(scope="module")
def outcomes(django_db_setup, django_db_blocker):
    """Each campaign played and settled once; the database is emptied afterwards (as a transactional test's is)."""
    from django.core.management import call_command

    from datadao.celery import app

    eager = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True  # consensus as the app triggers it
    try:
        with django_db_blocker.unblock():
            # Start from reset id sequences: assignment draws by md5(task id || salt), so the same ids give
            # the same run whatever tests ran before (sequences outlive the rolled-back data).
            call_command("flush", interactive=False, verbosity=0)
            try:
                yield {s.name: sim.run(s, seed=SEED, config=config)
                       for s, config in ((MIXED, MIXED_CONFIG), (SPLIT, SPLIT_CONFIG), (SINGLE, SPLIT_CONFIG),
                                         (MAJORITY, MAJORITY_CONFIG))}
            finally:
                call_command("flush", interactive=False, verbosity=0)
    finally:
        app.conf.task_always_eager, app.conf.task_eager_propagates = eager


def test_the_campaigns_were_worked_through(outcomes):
    for name, config in (("mixed", MIXED_CONFIG), ("split", SPLIT_CONFIG), ("single", SPLIT_CONFIG)):
        assert outcomes[name].judgments >= 0.9 * config.judgments, name
        assert outcomes[name].budget > 0, name
    honest = [a for a in outcomes["mixed"].accounts if a.honest_checks]
    assert sum(a.judgments >= ENOUGH_WORK for a in honest) >= 3  # the paid-with-enough-work check has subjects


def test_settlement_conserves_the_budget_and_the_ledger_reconciles(outcomes):
    for name, result in outcomes.items():
        assert result.problems == [], name
        assert result.paid_total + result.dust + result.retained + result.held_total == result.budget
        assert sum(a.paid for a in result.accounts) == result.paid_total


@pytest.mark.xfail(strict=False, reason="known gap: with ~35 judgments a 0.7 honest expert's evidence can "
                   "look like a clicker's, and its paid quality can stay at q_min; the bench reports how often "
                   "(9 of ~400 honest accounts in 27 runs)")
def test_every_honest_expert_with_enough_work_is_paid(outcomes):
    for name, result in outcomes.items():
        unpaid = [(a.accuracy, a.judgments) for a in result.accounts
                  if a.honest_checks and a.judgments >= ENOUGH_WORK and a.paid <= 0]
        assert unpaid == [], name


def test_random_and_position_biased_clickers_earn_far_less_than_honest_experts(outcomes):
    figures = sim.label_figures(outcomes["mixed"])
    assert figures["honest"].per_judgment > 0
    assert figures["random"].relative < 0.1
    assert figures["position"].relative < 0.1


def test_a_ring_answering_by_a_shared_rule_earns_less_than_honest_experts(outcomes):
    figures = sim.label_figures(outcomes["mixed"])
    assert figures["ring"].per_judgment < figures["honest"].per_judgment


def test_splitting_ones_work_over_accounts_pays_no_more_than_one_account(outcomes):
    split = sim.label_figures(outcomes["split"])["split"]
    single = sim.label_figures(outcomes["single"])["single"]
    assert single.judgments >= 0.9 * split.judgments  # the same work
    assert single.paid > 0
    assert split.paid <= single.paid


def test_a_majority_ring_earns_nothing_and_no_honest_expert_is_held_for_it(outcomes):
    result = outcomes["majority"]
    figures = sim.label_figures(result)
    assert figures["ring"].paid <= 0.05 * result.budget
    honest = [a for a in result.accounts if a.label == "honest"]
    assert [a.held for a in honest] == [0] * len(honest)  # outvoted by the ring, not mistaken for it
    assert figures["honest"].paid > 0
