"""Moderation signals end to end: planted raters are flagged with their evidence; honest ones are not."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotations.handles import rater_handle
from annotations.models import Judgment, QualityReport, RaterQuality, RationaleMatch
from annotations.quality import services
from tests import factories
from tests.annotations.quality_crowds import planted_campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def planted():
    campaign, kinds, truth = planted_campaign()
    services.campaign_quality_compute(campaign_id=campaign.pk)
    figures = {r.expert_id: r for r in RaterQuality.objects.filter(campaign=campaign)}
    return campaign, kinds, figures


def test_position_biased_rater_is_flagged_with_the_statistic(planted):
    campaign, kinds, figures = planted
    biased = figures[kinds["position"].pk]
    assert biased.flagged and biased.flag_position_bias
    evidence = biased.evidence["position_bias"]
    assert evidence["statistic"] == "z" and evidence["threshold"] == 4.0 and evidence["flagged"] is True
    assert evidence["p_first"] == 1.0 and evidence["value"] > 4.0 and evidence["n"] >= 20
    for expert in kinds["honest"]:
        assert not figures[expert.pk].flag_position_bias, figures[expert.pk].evidence["position_bias"]


def test_each_planted_rater_raises_its_own_signal_and_honest_raters_none(planted):
    campaign, kinds, figures = planted
    expected = {
        "fast": "flag_speed", "copier": "flag_copied_rationale", "gold_fail": "flag_gold",
        "outside": "flag_outside_expertise",
    }
    for kind, flag in expected.items():
        assert getattr(figures[kinds[kind].pk], flag), (kind, figures[kinds[kind].pk].evidence)
    for expert in kinds["colluders"]:
        assert figures[expert.pk].flag_collusion, figures[expert.pk].evidence.get("collusion")
    assert [e.pk for e in kinds["honest"] if figures[e.pk].flagged] == []


def test_evidence_names_partners_by_handle_and_keeps_counts(planted):
    campaign, kinds, figures = planted
    a, b = kinds["colluders"]
    collusion = figures[a.pk].evidence["collusion"]
    assert collusion["partner"] == rater_handle(campaign.pk, b.pk)
    assert collusion["n"] == 60 and collusion["co_errors"] >= 12 and collusion["value"] > 4
    speed = figures[kinds["fast"].pk].evidence["speed"]
    assert speed["value"] < -3 and speed["threshold"] == -3.0
    gold = figures[kinds["gold_fail"].pk].evidence["gold"]
    assert gold["n"] == 25 and gold["accuracy"] == pytest.approx(0.4) and gold["value"] < campaign.gold_bar
    copied = figures[kinds["copier"].pk].evidence["copied_rationale"]
    assert copied["value"] >= 3 and copied["threshold"] == 3
    matches = RationaleMatch.objects.filter(campaign=campaign)
    assert matches.count() >= 3
    assert set(matches.values_list("judgment__expert_id", flat=True)) == {kinds["copier"].pk}
    assert figures[kinds["gold_fail"].pk].gold_n == 25


def test_moderators_filter_flagged_raters_in_admin(planted, client):
    campaign, kinds, figures = planted
    client.force_login(factories.rewards_moderator(is_superuser=True))
    page = client.get("/admin/annotations/raterquality/?flag_position_bias__exact=1").content.decode()
    assert figures[kinds["position"].pk].handle in page
    assert figures[kinds["honest"][0].pk].handle not in page
    detail = client.get(f"/admin/annotations/raterquality/{figures[kinds['position'].pk].pk}/change/")
    assert "p_first" in detail.content.decode()


def test_rationale_check_is_incremental():
    campaign, kinds, _ = planted_campaign(seed=5)
    Judgment.objects.filter(campaign=campaign).update(submitted_at=timezone.now() - timedelta(hours=1))
    first = services.campaign_quality_compute(campaign_id=campaign.pk)
    assert first.figures["rationale_checked_tasks"] > 100 and first.rationales_checked_until is not None
    matches = RationaleMatch.objects.filter(campaign=campaign).count()
    # A new judgment: only its task is read again, and nothing already found is duplicated.
    task = factories.tasks_bulk(campaign, 1, prefix="late")[0]
    factories.judgments_bulk([{"task": task, "expert": e, "ranks": [1, 2], "strength": -1,
                               "rationale": f"late rationale by {n} about renal dosing"}
                              for n, e in enumerate(kinds["honest"][:3])])
    second = services.campaign_quality_compute(campaign_id=campaign.pk)
    assert second.version == first.version + 1
    assert second.figures["rationale_checked_tasks"] < 10
    assert RationaleMatch.objects.filter(campaign=campaign).count() == matches


def test_rationale_backlog_is_worked_through_within_the_budget_new_tasks_first(monkeypatch):
    campaign, kinds, _ = planted_campaign(seed=5)
    Judgment.objects.filter(campaign=campaign).update(submitted_at=timezone.now() - timedelta(hours=1))
    services.campaign_quality_compute(campaign_id=campaign.pk)
    everything = set(RationaleMatch.objects.filter(campaign=campaign).values_list("judgment_id", "source_id"))
    assert len(everything) >= 3
    RationaleMatch.objects.all().delete()
    QualityReport.objects.filter(campaign=campaign).delete()

    monkeypatch.setattr(services, "RATIONALE_BUDGET", 300)
    first = services.campaign_quality_compute(campaign_id=campaign.pk)
    assert 0 < first.figures["rationale_checked_tasks"] < 80
    assert first.figures["rationale_backlog_after"] is not None

    late = factories.tasks_bulk(campaign, 1, prefix="late")[0]
    factories.judgments_bulk([{"task": late, "expert": e, "ranks": [1, 2], "strength": -1,
                               "rationale": "the same words copied around for the late task"}
                              for e in kinds["honest"][:2]])
    second = services.campaign_quality_compute(campaign_id=campaign.pk)
    assert RationaleMatch.objects.filter(task=late).count() == 1  # the new task is checked at once
    runs = 2
    while second.figures["rationale_backlog_after"] is not None and runs < 20:
        second = services.campaign_quality_compute(campaign_id=campaign.pk)
        runs += 1
    found = set(RationaleMatch.objects.filter(campaign=campaign).exclude(task=late)
                .values_list("judgment_id", "source_id"))
    assert found == everything and runs > 3
