"""Consensus and adaptive overlap: stored consensus on a crowd with a known truth, the hook, idempotency."""
from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from annotations.models import Assignment, QualityReport, RaterQuality, Task, TaskConsensus
from annotations.quality import services
from annotations.quality.selectors import rater_epoch_quality
from tests import factories

pytestmark = pytest.mark.django_db

RATIONALE = "B names the contraindication; A misses it."


def crowd(campaign, *, n_tasks=300, overlap=5, seed=7):
    """Honest raters 85% right, 20% of raters random spammers, one rater who always picks the response shown first.

    Returns (tasks, truth per task: 0 = first upload better, 1 = second, experts by kind).
    """
    rng = np.random.default_rng(seed)
    honest = [factories.ExpertFactory() for _ in range(19)]
    spammers = [factories.ExpertFactory() for _ in range(5)]
    lefty = factories.ExpertFactory()
    experts = honest + spammers + [lefty]
    tasks = factories.tasks_bulk(campaign, n_tasks)
    truth = rng.integers(0, 2, n_tasks)
    rows = []
    for t, task in enumerate(tasks):
        for e in rng.choice(len(experts), overlap, replace=False).tolist():
            expert = experts[e]
            order = [0, 1] if rng.random() < 0.5 else [1, 0]
            if expert in spammers:
                says = int(rng.integers(0, 2))
            elif expert is lefty:
                says = order[0]
            else:
                says = int(truth[t]) if rng.random() < 0.85 else 1 - int(truth[t])
            strength = int(rng.integers(1, 4)) * (1 if says == 1 else -1)
            rows.append({"task": task, "expert": expert, "ranks": [2, 1] if says else [1, 2], "strength": strength,
                         "display_order": order, "rationale": f"{RATIONALE} ({t}, {e})"})
    factories.judgments_bulk(rows)
    return tasks, truth, {"honest": honest, "spammers": spammers, "lefty": lefty}, rows


def test_stored_consensus_beats_plain_majority_and_discounts_spammers():
    campaign = factories.open_campaign(overlap=5, max_overlap=5)
    tasks, truth, kinds, rows = crowd(campaign, n_tasks=400)
    services.campaign_quality_compute(campaign_id=campaign.pk)

    stored = dict(TaskConsensus.objects.filter(campaign=campaign).values_list("task_id", "ranks"))
    assert len(stored) == len(tasks)
    says_second = {task.pk: [] for task in tasks}
    for row in rows:
        says_second[row["task"].pk].append(row["ranks"] == [2, 1])
    consensus_right = np.array([(stored[task.pk] == [2, 1]) == bool(truth[t]) for t, task in enumerate(tasks)])
    majority_right = np.array([(np.mean(says_second[task.pk]) > 0.5) == bool(truth[t])
                               for t, task in enumerate(tasks)])
    assert consensus_right.mean() > majority_right.mean()
    assert consensus_right.mean() > 0.9
    # Paired: tasks the weighting fixes far outnumber tasks it breaks.
    fixed = int((consensus_right & ~majority_right).sum())
    broken = int((~consensus_right & majority_right).sum())
    assert fixed >= 2 * broken + 3

    weight = dict(RaterQuality.objects.filter(campaign=campaign).values_list("expert_id", "vote_weight"))
    honest = np.median([weight[e.pk] for e in kinds["honest"]])
    assert max(weight[e.pk] for e in kinds["spammers"]) < honest / 2
    assert weight[kinds["lefty"].pk] < honest / 2


def test_margin_is_the_weighted_vote_share_difference():
    campaign = factories.open_campaign(overlap=3, max_overlap=3)
    task = factories.tasks_bulk(campaign, 1)[0]
    a, b, c = (factories.ExpertFactory() for _ in range(3))
    factories.judgments_bulk([
        {"task": task, "expert": a, "ranks": [1, 2], "strength": -2},
        {"task": task, "expert": b, "ranks": [1, 2], "strength": -1},
        {"task": task, "expert": c, "ranks": [2, 1], "strength": 3},
    ])
    consensus = services.task_consensus_update(task_id=task.pk)
    # Three raters nobody has estimated yet weigh the same: 2 of 3 votes -> |2 * 2/3 - 1| = 1/3.
    assert consensus.ranks == [1, 2]
    assert consensus.margin == pytest.approx(1 / 3, abs=1e-4)
    assert consensus.pairs == [{"i": 0, "j": 1, "p": 0.667, "margin": 0.333, "votes": 3}]


def _lease_and_judge(expert, campaign, *, first_better: bool, capture):
    """Lease and judge through the API; the after-commit hook (consensus) runs as in production."""
    client = APIClient()
    client.force_authenticate(expert.user)
    lease = client.post("/api/v1/assignments/next", {"campaign": campaign.pk}, format="json")
    assert lease.status_code == 200, lease.content
    order = Assignment.objects.get(pk=lease.json()["id"]).display_order
    # Slot A shows upload position order[0].
    a_is_first = order[0] == 0
    ranking = ["A", "B"] if a_is_first == first_better else ["B", "A"]
    strength = -2 if ranking[0] == "A" else 2
    with capture(execute=True):
        response = client.post(f"/api/v1/assignments/{lease.json()['id']}/judgment",
                               {"ranking": ranking, "strength": strength, "rationale": RATIONALE}, format="json")
    assert response.status_code == 201, response.content


def test_disagreement_raises_the_overlap_then_sends_the_task_to_review(django_capture_on_commit_callbacks):
    campaign = factories.open_campaign(overlap=3, max_overlap=4, consensus_min_margin=0.6)
    task = factories.TaskFactory(campaign=campaign)
    experts = [factories.ExpertFactory() for _ in range(4)]

    for expert, first_better in zip(experts[:3], [True, True, False]):
        _lease_and_judge(expert, campaign, first_better=first_better, capture=django_capture_on_commit_callbacks)
    task.refresh_from_db()
    # The hook computed a 2-1 split (margin 1/3 < 0.6): one more rater wanted.
    assert task.consensus.margin < 0.6
    assert (task.state, task.target_overlap) == (Task.State.OPEN, 4)

    _lease_and_judge(experts[3], campaign, first_better=False, capture=django_capture_on_commit_callbacks)
    task.refresh_from_db()
    assert task.consensus.n_raters == 4 and task.consensus.margin == pytest.approx(0.0)
    assert (task.state, task.target_overlap) == (Task.State.REVIEW, 4)

    # Running the jobs again decides nothing twice.
    services.task_consensus_update(task_id=task.pk)
    services.campaign_quality_compute(campaign_id=campaign.pk)
    task.refresh_from_db()
    assert (task.state, task.target_overlap) == (Task.State.REVIEW, 4)


def test_agreeing_raters_complete_the_task_without_extra_raters(django_capture_on_commit_callbacks):
    campaign = factories.open_campaign(overlap=3, max_overlap=5)
    task = factories.TaskFactory(campaign=campaign)
    for _ in range(3):
        _lease_and_judge(factories.ExpertFactory(), campaign, first_better=True,
                         capture=django_capture_on_commit_callbacks)
    task.refresh_from_db()
    assert task.consensus.ranks == [1, 2] and task.consensus.margin == pytest.approx(1.0)
    assert (task.state, task.target_overlap) == (Task.State.COMPLETE, 3)


def test_review_queue_in_admin_shows_the_task_and_its_judgments(client):
    campaign = factories.open_campaign(overlap=2, max_overlap=2)
    task = factories.tasks_bulk(campaign, 1, prefix="disputed")[0]
    a, b = factories.ExpertFactory(), factories.ExpertFactory()
    factories.judgments_bulk([
        {"task": task, "expert": a, "ranks": [1, 2], "strength": -1, "rationale": "first is safer here"},
        {"task": task, "expert": b, "ranks": [2, 1], "strength": 1, "rationale": "second cites the guideline"},
    ])
    services.task_consensus_update(task_id=task.pk)
    task.refresh_from_db()
    assert task.state == Task.State.REVIEW

    moderator = factories.rewards_moderator(is_superuser=True)
    client.force_login(moderator)
    listing = client.get("/admin/annotations/taskawaitingreview/")
    assert listing.status_code == 200 and task.external_id in listing.content.decode()
    detail = client.get(f"/admin/annotations/taskawaitingreview/{task.pk}/change/")
    page = detail.content.decode()
    assert "second cites the guideline" in page and "first is safer here" in page

    response = client.post("/admin/annotations/taskawaitingreview/",
                           {"action": "adjudicate", "_selected_action": [task.pk]})
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.state == Task.State.ADJUDICATED


def test_campaign_job_is_idempotent():
    campaign = factories.open_campaign(overlap=5, max_overlap=6)
    tasks, _, kinds, _ = crowd(campaign, n_tasks=60)

    def snapshot():
        return (
            sorted(TaskConsensus.objects.filter(campaign=campaign).values_list("task_id", "ranks", "margin", "pairs")),
            sorted(RaterQuality.objects.filter(campaign=campaign).values_list(
                "expert_id", "handle", "reliability", "vote_weight", "flagged", "evidence")),
            sorted(Task.objects.filter(campaign=campaign).values_list("id", "state", "target_overlap")),
        )

    first = services.campaign_quality_compute(campaign_id=campaign.pk)
    before = snapshot()
    second = services.campaign_quality_compute(campaign_id=campaign.pk)
    assert second.pk == first.pk
    assert QualityReport.objects.filter(campaign=campaign).count() == 1
    assert snapshot() == before
    assert RaterQuality.objects.filter(campaign=campaign).count() == 25

    # New judgments: a new version, rows updated in place (no duplicates).
    extra = factories.tasks_bulk(campaign, 1, prefix="late")[0]
    factories.judgments_bulk([{"task": extra, "expert": e, "ranks": [1, 2], "strength": -1}
                              for e in kinds["honest"][:5]])
    third = services.campaign_quality_compute(campaign_id=campaign.pk)
    assert third.version == first.version + 1
    assert RaterQuality.objects.filter(campaign=campaign).count() == 25
    assert TaskConsensus.objects.filter(campaign=campaign).count() == 61


def test_settlement_selector_uses_the_weighted_leave_one_out_consensus():
    from datetime import timedelta

    from django.utils import timezone

    campaign = factories.open_campaign(overlap=3, max_overlap=3)
    tasks = factories.tasks_bulk(campaign, 20)
    honest = [factories.ExpertFactory() for _ in range(2)]
    contrarian = factories.ExpertFactory()
    rows = []
    for task in tasks:
        rows += [{"task": task, "expert": e, "ranks": [1, 2], "strength": -2} for e in honest]
        rows.append({"task": task, "expert": contrarian, "ranks": [2, 1], "strength": 2})
    factories.judgments_bulk(rows)
    services.campaign_quality_compute(campaign_id=campaign.pk)
    now = timezone.now()
    inputs = {i.expert_id: i for i in rater_epoch_quality(
        campaign_id=campaign.pk, starts_at=now - timedelta(days=1), ends_at=now + timedelta(minutes=1))}
    assert inputs[honest[0].pk].n == 20 and inputs[honest[0].pk].matches == 20
    assert inputs[honest[0].pk].n_compared == 20
    assert inputs[contrarian.pk].matches == 0 and inputs[contrarian.pk].n_compared == 20
    assert inputs[contrarian.pk].f_rater == 0.0 and inputs[contrarian.pk].f_consensus == 1.0
    assert rater_epoch_quality(campaign_id=campaign.pk, starts_at=now - timedelta(days=9),
                               ends_at=now - timedelta(days=8)) == []


def test_full_rankings_get_a_bradley_terry_order_and_kendalls_w():
    campaign = factories.open_campaign(responses_per_task=3, strength_scale=False, overlap=5, max_overlap=5)
    rng = np.random.default_rng(11)
    experts = [factories.ExpertFactory() for _ in range(8)]
    contrarian = experts[-1]
    tasks = factories.tasks_bulk(campaign, 40)
    truth, rows = {}, []
    for task in tasks:
        best_first = rng.permutation(3).tolist()  # upload positions, best first
        truth[task.pk] = [best_first.index(p) + 1 for p in range(3)]
        for e in rng.choice(len(experts), 5, replace=False).tolist():
            order = list(best_first)
            if experts[e] is contrarian:
                order.reverse()
            elif rng.random() < 0.2:
                a = int(rng.integers(0, 2))
                order[a], order[a + 1] = order[a + 1], order[a]
            rows.append({"task": task, "expert": experts[e], "ranks": [order.index(p) + 1 for p in range(3)]})
    factories.judgments_bulk(rows)
    report = services.campaign_quality_compute(campaign_id=campaign.pk)

    consensus = {c.task_id: c for c in TaskConsensus.objects.filter(campaign=campaign)}
    assert {c.method for c in consensus.values()} == {"bradley_terry"}
    right = np.mean([consensus[t.pk].ranks == truth[t.pk] for t in tasks])
    assert right >= 0.9
    sample = consensus[tasks[0].pk]
    assert [(p["i"], p["j"]) for p in sample.pairs] == [(0, 1), (0, 2), (1, 2)]
    assert sample.margin == pytest.approx(min(p["margin"] for p in sample.pairs), abs=1e-3)
    w = report.figures["kendall_w"]
    assert w["n_tasks"] == 40 and 0.4 < w["mean"] < 1.0
    assert report.figures["alpha_ordinal"]["value"] is not None


def test_periodic_job_recomputes_open_campaigns_only():
    from annotations.tasks import quality_recompute_open_campaigns

    live = factories.open_campaign()
    draft = factories.CampaignFactory()
    for campaign in (live, draft):
        task = factories.tasks_bulk(campaign, 1)[0]
        factories.judgments_bulk([{"task": task, "expert": factories.ExpertFactory(), "ranks": [1, 2],
                                   "strength": -1}])
    assert quality_recompute_open_campaigns() == 1
    assert QualityReport.objects.filter(campaign=live).count() == 1
    assert not QualityReport.objects.filter(campaign=draft).exists()


def test_sparse_campaigns_get_a_report_without_figures_they_cannot_support():
    campaign = factories.open_campaign()
    gold = factories.tasks_bulk(campaign, 1, prefix="gold", gold=[1, 2])[0]
    factories.judgments_bulk([{"task": gold, "expert": factories.ExpertFactory(), "ranks": [1, 2],
                               "gold_correct": True}])
    report = services.campaign_quality_compute(campaign_id=campaign.pk)
    assert report.n_tasks == 0 and report.figures["alpha_nominal"]["value"] is None
    assert not TaskConsensus.objects.filter(campaign=campaign).exists()

    task = factories.tasks_bulk(campaign, 1)[0]
    judgment = factories.judgments_bulk([{"task": task, "expert": factories.ExpertFactory(), "ranks": [2, 1]}])[0]
    report = services.campaign_quality_compute(campaign_id=campaign.pk)
    assert report.version == 2 and report.n_tasks == 1
    assert TaskConsensus.objects.get(task=task).ranks == [2, 1]

    # Voiding the only judgment of a task withdraws its consensus.
    type(judgment).objects.filter(pk=judgment.pk).update(voided=True)
    services.campaign_quality_compute(campaign_id=campaign.pk)
    assert not TaskConsensus.objects.filter(task=task).exists()


def test_bradley_terry_order_matches_a_fit_per_task():
    """The vectorised order (weighted wins in a balanced round robin) is what weighted_bradley_terry finds."""
    from scipy.stats import rankdata

    from annotations.consensus import weighted_bradley_terry
    from annotations.quality import compute

    rng = np.random.default_rng(5)
    k, n_tasks, overlap = 4, 300, 5
    task = np.repeat(np.arange(n_tasks), overlap)
    ranks = np.array([rankdata(rng.integers(0, 3, k), method="min") for _ in task]).astype(np.int64)
    weight = rng.choice([0.0, 0.3, 1.0, 1.7, 2.5], task.size)
    j = compute.Judgments(k, np.arange(task.size) + 1, task, np.arange(task.size), ranks,
                          np.full(task.size, compute.STRENGTH_NONE), np.zeros(task.size, int), np.ones(task.size, int),
                          np.full(task.size, 1000), np.zeros(task.size, bool), np.full(task.size, -1),
                          np.zeros(task.size, bool))
    direction, _ = compute.pair_directions(j)
    fast = compute._bradley_terry_ranks(k, direction, weight, task, n_tasks)
    i, jj = np.triu_indices(k, 1)
    for t in range(n_tasks):
        d, w = direction[task == t].ravel(), np.repeat(weight[task == t], i.size)
        left, right = np.tile(i, overlap), np.tile(jj, overlap)
        theta = weighted_bradley_terry(
            k, np.concatenate([left[d > 0], right[d < 0], left[d == 0], right[d == 0]]),
            np.concatenate([right[d > 0], left[d < 0], right[d == 0], left[d == 0]]),
            np.concatenate([w[d > 0], w[d < 0], w[d == 0] / 2, w[d == 0] / 2]), tol=1e-13, iters=2000)
        assert fast[t].tolist() == rankdata(-np.round(theta, 6), method="min").tolist(), t


def test_an_overturned_gold_verdict_refreshes_the_raters_figures_without_new_judgments():
    """A dispute that overturns a gold verdict changes no judgment id; the next run must still see it."""
    from annotations.models import Judgment

    campaign = factories.open_campaign(overlap=3, max_overlap=3)
    experts = [factories.ExpertFactory() for _ in range(3)]
    golds = [factories.GoldTaskFactory(campaign=campaign) for _ in range(4)]
    tasks = factories.tasks_bulk(campaign, 6, prefix="q")
    rows = [{"task": t, "expert": e, "ranks": [1, 2], "strength": -1} for t in tasks for e in experts]
    rows += [{"task": g, "expert": e, "ranks": [1, 2] if e != experts[0] or i else [2, 1],
              "gold_correct": e != experts[0] or bool(i)} for i, g in enumerate(golds) for e in experts]
    factories.judgments_bulk(rows)
    first = services.campaign_quality_compute(campaign_id=campaign.pk)
    before = RaterQuality.objects.get(campaign=campaign, expert=experts[0]).gold_accuracy
    assert before == pytest.approx(0.75)

    # The moderator overturns the verdict on the one gold answer expert 0 got wrong.
    Judgment.objects.filter(expert=experts[0], is_gold=True, gold_correct=False).update(gold_correct=True)
    second = services.campaign_quality_compute(campaign_id=campaign.pk)
    assert second.version == first.version + 1
    assert RaterQuality.objects.get(campaign=campaign, expert=experts[0]).gold_accuracy == pytest.approx(1.0)


# --------------------------------------------------------------------------
# Robust to one rater, and to a ring that makes up most raters
# --------------------------------------------------------------------------


def test_one_reliable_rater_against_two_poor_ones_is_not_a_settled_consensus():
    """Poor raters' votes still count (no weight drops to zero from one estimate), and a task whose consensus
    rests on one heavy vote has under two effective votes: it gets another rater instead of counting as done."""
    campaign = factories.open_campaign(overlap=3, max_overlap=5)
    tasks = factories.tasks_bulk(campaign, 40)
    gold = factories.tasks_bulk(campaign, 20, prefix="gold", gold=[1, 2])
    good, poor1, poor2 = (factories.ExpertFactory() for _ in range(3))
    rng = np.random.default_rng(3)
    rows = []
    for g in gold:  # the good rater is right on gold, the poor ones at chance
        rows.append({"task": g, "expert": good, "ranks": [1, 2], "gold_correct": True})
        for e in (poor1, poor2):
            right = bool(rng.random() < 0.5)
            rows.append({"task": g, "expert": e, "ranks": [1, 2] if right else [2, 1], "gold_correct": right})
    for task in tasks[:-1]:
        for e in (good, poor1, poor2):
            rows.append({"task": task, "expert": e, "ranks": [1, 2] if rng.random() < 0.5 else [2, 1]})
    last = tasks[-1]  # the good rater against both poor ones
    rows += [{"task": last, "expert": good, "ranks": [1, 2]},
             {"task": last, "expert": poor1, "ranks": [2, 1]}, {"task": last, "expert": poor2, "ranks": [2, 1]}]
    factories.judgments_bulk(rows)

    services.campaign_quality_compute(campaign_id=campaign.pk)

    weight = dict(RaterQuality.objects.filter(campaign=campaign).values_list("expert_id", "vote_weight"))
    assert 0 < weight[poor1.pk] < weight[good.pk] / 2 and weight[poor2.pk] > 0
    consensus = TaskConsensus.objects.get(task=last)
    assert consensus.margin < 1.0  # the two opposite votes are visible in the margin
    assert consensus.effective_votes < 2
    last.refresh_from_db()
    assert (last.state, last.target_overlap) == (Task.State.OPEN, 4)  # another rater is sought


def test_a_ring_that_makes_up_most_raters_does_not_capture_the_consensus():
    """Twelve accounts answering by one rule (not reading) among eight honest raters: gold anchors the vote
    weights, so the consensus follows the honest raters and the ring's agreement with it stays at chance."""
    campaign = factories.open_campaign(overlap=3, max_overlap=3)
    rng = np.random.default_rng(11)
    tasks = factories.tasks_bulk(campaign, 240)
    gold = factories.tasks_bulk(campaign, 30, prefix="gold", gold=[1, 2])
    truth = rng.integers(0, 2, len(tasks))
    rule = rng.integers(0, 2, len(tasks))  # the ring's shared answer, unrelated to the truth
    gold_rule = rng.integers(0, 2, len(gold))
    honest = [factories.ExpertFactory() for _ in range(8)]
    ring = [factories.ExpertFactory() for _ in range(12)]
    everyone = honest + ring
    rows = []
    for g, task in enumerate(gold):
        for e in everyone:
            right = bool(gold_rule[g] == 0) if e in ring else bool(rng.random() < 0.8)
            if rng.random() < 0.4:
                rows.append({"task": task, "expert": e, "ranks": [1, 2] if right else [2, 1], "gold_correct": right})
    for t, task in enumerate(tasks):
        for e in rng.choice(len(everyone), 3, replace=False).tolist():
            says = int(rule[t]) if everyone[e] in ring else (int(truth[t]) if rng.random() < 0.8 else 1 - int(truth[t]))
            rows.append({"task": task, "expert": everyone[e], "ranks": [2, 1] if says else [1, 2]})
    factories.judgments_bulk(rows)

    services.campaign_quality_compute(campaign_id=campaign.pk)

    weight = dict(RaterQuality.objects.filter(campaign=campaign).values_list("expert_id", "vote_weight"))
    assert np.median([weight[e.pk] for e in ring]) < np.median([weight[e.pk] for e in honest]) / 2
    stored = dict(TaskConsensus.objects.filter(campaign=campaign).values_list("task_id", "ranks"))
    right = np.mean([(stored[task.pk] == [2, 1]) == bool(truth[t]) for t, task in enumerate(tasks)])
    assert right > 0.7  # a plain majority follows the ring on most tasks (about 0.6 right here)
    now = timezone.now()
    inputs = {i.expert_id: i for i in rater_epoch_quality(
        campaign_id=campaign.pk, starts_at=now - timedelta(days=30), ends_at=now + timedelta(days=1))}
    ring_agreement = np.mean([inputs[e.pk].weighted_matches / inputs[e.pk].weighted_compared for e in ring])
    honest_agreement = np.mean([inputs[e.pk].weighted_matches / inputs[e.pk].weighted_compared for e in honest])
    assert ring_agreement < 0.65 < honest_agreement
