"""Assignment against timing collusion: a Next draws from the most-needed tasks at random, and new or
flagged experts see more gold. Runs on both lanes (the SQLite claim and PostgreSQL's one statement)."""
import random
from collections import Counter

import pytest
from django.utils import timezone

from annotations import assignment as svc
from annotations.models import Judgment, RaterQuality
from tests import factories

pytestmark = pytest.mark.django_db

RING = 6


class FixedDraw(random.Random):
    """An rng whose every ``random()`` is ``value``: gold is served exactly when ``value`` < the chance."""

    def __init__(self, value: float):
        super().__init__(0)
        self.value = value

    def random(self):
        return self.value


def scored_gold(expert, n, *, gold_correct=True, voided=False):
    """``n`` gold answers of the expert in a campaign of their own, scored ``gold_correct``."""
    campaign = factories.open_campaign(gold_rate=0.1)
    tasks = factories.tasks_bulk(campaign, n, prefix="scored", gold=[1, 2])
    judgments = factories.judgments_bulk([
        {"task": task, "expert": expert, "ranks": [1, 2], "gold_correct": gold_correct} for task in tasks
    ])
    if voided:
        Judgment.objects.filter(pk__in=[j.pk for j in judgments]).update(voided=True)


def flag(expert, campaign):
    RaterQuality.objects.create(
        campaign=campaign, expert=expert, handle=f"h{expert.pk}-{campaign.pk}", flagged=True, flag_speed=True,
        computed_at=timezone.now(),
    )


def next_lease(lane, expert, campaign, rng):
    if lane == "context":
        return svc.assignment_next_in(expert=expert, campaign_id=campaign.pk, rng=rng)
    return svc.assignment_next(expert=expert, campaign=campaign, rng=rng)


# --- the draw from the window -----------------------------------------------------------------------------


def test_a_ring_pressing_next_back_to_back_rarely_shares_a_task():
    """Six accounts of one ring press Next one right after another on fresh campaigns. The strict
    "fullest first" order put all six on two tasks every time (two ring votes out of three on each,
    20 such tasks over ten campaigns); drawn from the 32 most-needed, two presses share a task about
    one time in 32 (about 0.5 shared tasks a campaign)."""
    ring = [factories.ExpertFactory() for _ in range(RING)]
    rng = random.Random(20240611)
    shared, distinct = 0, []
    for round_ in range(10):
        campaign = factories.open_campaign(overlap=3, max_overlap=3)
        factories.tasks_bulk(campaign, 60, prefix=f"ring{round_}")
        served = Counter(svc.assignment_next(expert=member, campaign=campaign, rng=rng).task_id for member in ring)
        shared += sum(1 for n in served.values() if n >= 2)
        distinct.append(len(served))
    assert shared <= 10, (shared, distinct)
    assert min(distinct) >= 4, distinct


def test_nearly_full_tasks_are_served_first_while_they_fill_the_window(settings):
    """Closest to completion stays the preference: with a window of 8 and 16 tasks one rating short,
    the next 8 experts all get one of those (none of the 30 fresh ones), drawn at random among them."""
    settings.DATADAO_ASSIGN_WINDOW = 8
    campaign = factories.open_campaign(overlap=3, max_overlap=3)
    fresh = factories.tasks_bulk(campaign, 30, prefix="fresh")
    nearly = factories.tasks_bulk(campaign, 16, prefix="nearly")  # made last: last in id order
    earlier = [factories.ExpertFactory() for _ in range(2)]
    factories.judgments_bulk([{"task": task, "expert": e, "ranks": [1, 2]} for task in nearly for e in earlier])
    rng = random.Random(5)
    served = [svc.assignment_next(expert=factories.ExpertFactory(), campaign=campaign, rng=rng).task_id
              for _ in range(8)]
    nearly_ids = sorted(task.pk for task in nearly)
    assert len(set(served)) == 8 and set(served) <= set(nearly_ids)
    assert not {task.pk for task in fresh} & set(served)
    # Drawn, not taken in id order (all eight from the first eight ids: 8!/8^8, about 1 in 400).
    assert set(served) != set(nearly_ids[:8])


def test_the_draw_replays_from_a_seed():
    """Tests and incident reviews can replay a run: the same seed draws the same task from the same window."""
    campaign = factories.open_campaign()
    factories.tasks_bulk(campaign, 40, prefix="replay")
    first = svc.assignment_next(expert=factories.ExpertFactory(), campaign=campaign, rng=random.Random(7))
    svc.assignment_skip(expert=first.expert, assignment_id=first.pk, reason="replay")  # the window is as before
    again = svc.assignment_next(expert=factories.ExpertFactory(), campaign=campaign, rng=random.Random(7))
    assert again.task_id == first.task_id


# --- more gold for new and flagged experts ----------------------------------------------------------------


@pytest.fixture
def gold_campaign():
    """Gold at 10%: a draw of 0.2 is gold only at the raised rate (30%)."""
    campaign = factories.open_campaign(gold_rate=0.1)
    factories.tasks_bulk(campaign, 5, prefix="regular")
    factories.tasks_bulk(campaign, 5, prefix="gold", gold=[1, 2])
    return campaign


@pytest.mark.parametrize("lane", ["orm", "context"])
def test_a_new_expert_gets_gold_at_the_raised_rate(gold_campaign, lane):
    new = factories.ExpertFactory()
    assert next_lease(lane, new, gold_campaign, FixedDraw(0.2)).task.is_gold
    assert not next_lease(lane, factories.ExpertFactory(), gold_campaign, FixedDraw(0.3)).task.is_gold


@pytest.mark.parametrize("lane", ["orm", "context"])
def test_ten_scored_gold_answers_anywhere_bring_the_campaign_rate(gold_campaign, lane):
    seasoned = factories.ExpertFactory()
    scored_gold(seasoned, 5, gold_correct=True)
    scored_gold(seasoned, 5, gold_correct=False)  # wrong answers are evidence too
    assert not next_lease(lane, seasoned, gold_campaign, FixedDraw(0.2)).task.is_gold
    assert next_lease(lane, factories.ExpertFactory(), gold_campaign, FixedDraw(0.2)).task.is_gold


@pytest.mark.parametrize("lane", ["orm", "context"])
def test_voided_and_unscored_gold_answers_do_not_count(gold_campaign, lane):
    expert = factories.ExpertFactory()
    scored_gold(expert, 9)
    scored_gold(expert, 3, voided=True)
    scored_gold(expert, 3, gold_correct=None)
    assert next_lease(lane, expert, gold_campaign, FixedDraw(0.2)).task.is_gold


@pytest.mark.parametrize("lane", ["orm", "context"])
def test_an_expert_flagged_in_the_campaign_gets_the_raised_rate(gold_campaign, lane):
    flagged, flagged_elsewhere = factories.ExpertFactory(), factories.ExpertFactory()
    for expert in (flagged, flagged_elsewhere):
        scored_gold(expert, 10)
    flag(flagged, gold_campaign)
    flag(flagged_elsewhere, factories.open_campaign(gold_rate=0.1))
    assert next_lease(lane, flagged, gold_campaign, FixedDraw(0.2)).task.is_gold
    assert not next_lease(lane, flagged_elsewhere, gold_campaign, FixedDraw(0.2)).task.is_gold


@pytest.mark.parametrize("lane", ["orm", "context"])
def test_the_raise_never_adds_gold_to_a_campaign_without_it_nor_lowers_a_higher_rate(lane):
    no_gold = factories.open_campaign(gold_rate=0.0)
    factories.tasks_bulk(no_gold, 3, prefix="none")
    factories.tasks_bulk(no_gold, 3, prefix="unused-gold", gold=[1, 2])
    new = factories.ExpertFactory()
    assert not next_lease(lane, new, no_gold, FixedDraw(0.0)).task.is_gold
    generous = factories.open_campaign(gold_rate=0.45)
    factories.tasks_bulk(generous, 3, prefix="regular")
    factories.tasks_bulk(generous, 3, prefix="gold", gold=[1, 2])
    seasoned = factories.ExpertFactory()
    scored_gold(seasoned, 10)
    assert next_lease(lane, seasoned, generous, FixedDraw(0.4)).task.is_gold


def test_over_two_hundred_nexts_new_and_seasoned_experts_see_gold_at_their_rates():
    """Skipping every lease keeps the new expert new (a skip is no gold answer)."""
    campaign = factories.open_campaign(gold_rate=0.05)
    factories.tasks_bulk(campaign, 200, prefix="regular")
    factories.tasks_bulk(campaign, 120, prefix="gold", gold=[1, 2])
    new, seasoned = factories.ExpertFactory(), factories.ExpertFactory()
    scored_gold(seasoned, 10)
    rng = random.Random(31)
    gold = Counter()
    for expert in (new, seasoned):
        for _ in range(200):
            lease = svc.assignment_next_in(expert=expert, campaign_id=campaign.pk, rng=rng)
            gold[expert.pk] += lease.task.is_gold
            svc.assignment_skip(expert=expert, assignment_id=lease.pk, reason="counting")
    # Binomial(200, 0.3): 60 +- 6.5; Binomial(200, 0.05): 10 +- 3.1. Bounds about 3.5 sigma wide.
    assert 37 <= gold[new.pk] <= 83, gold
    assert gold[seasoned.pk] <= 21, gold
