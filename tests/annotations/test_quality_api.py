"""Quality API: figures for the owning lab by rater handle only; 404 for other labs; recompute queues the job."""
from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from annotations.handles import rater_handle
from annotations.models import Expert, QualityReport
from annotations.quality import services
from tests import factories
from tests.annotations.quality_crowds import planted_campaign

pytestmark = pytest.mark.django_db

RATER_KEYS = {"handle", "n_judgments", "agreement", "n_compared", "reliability", "gold_accuracy", "gold_lower_bound",
              "gold_n", "median_seconds", "flags", "evidence"}
IDENTITY_KEYS = {"expert", "expert_id", "user", "user_id", "username", "email", "wallet_address", "name"}


@pytest.fixture
def computed(lab):
    campaign, kinds, _ = planted_campaign(lab=lab)
    services.campaign_quality_compute(campaign_id=campaign.pk)
    return campaign, kinds


def _keys(value):
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


def test_quality_shows_agreement_consensus_and_raters_without_identities(lab_client, computed):
    campaign, kinds = computed
    response = lab_client.get(f"/api/v1/campaigns/{campaign.pk}/quality")
    assert response.status_code == 200
    body = response.json()
    text = json.dumps(body)
    for expert in Expert.objects.select_related("user"):
        assert expert.user.username not in text and expert.user.email not in text
    assert not IDENTITY_KEYS & set(_keys(body))
    assert all(set(rater) == RATER_KEYS for rater in body["raters"])
    handles = {rater["handle"] for rater in body["raters"]}
    assert rater_handle(campaign.pk, kinds["position"].pk) in handles
    assert len(handles) == 12 + 5 + 2

    report = QualityReport.objects.get(campaign=campaign)
    assert body["alpha_nominal"] == report.figures["alpha_nominal"]
    assert body["alpha_nominal"]["low"] <= body["alpha_nominal"]["value"] <= body["alpha_nominal"]["high"]
    assert set(body["alpha_ordinal"]) == {"value", "low", "high"}
    assert 0 < body["raw_agreement"] < 1
    assert body["kappa"]["n_pairs"] > 0
    assert sum(b["count"] for b in body["margin_histogram"]) == body["consensus"]["tasks"] == 160
    assert [point["version"] for point in body["alpha_history"]] == [1]
    assert body["progress"]["tasks"] == 160 and body["progress"]["gold_tasks"] == 25
    flagged = next(r for r in body["raters"] if r["handle"] == rater_handle(campaign.pk, kinds["position"].pk))
    assert "position_bias" in flagged["flags"] and flagged["evidence"]["position_bias"]["value"] > 4


def test_other_labs_get_404_and_experts_403(other_lab_client, computed, expert_client):
    campaign, _ = computed
    for path in ("quality", "consensus"):
        assert other_lab_client.get(f"/api/v1/campaigns/{campaign.pk}/{path}").status_code == 404
    assert other_lab_client.post(f"/api/v1/campaigns/{campaign.pk}/quality/recompute").status_code == 404
    assert expert_client.get(f"/api/v1/campaigns/{campaign.pk}/quality").status_code == 403
    assert APIClient().get(f"/api/v1/campaigns/{campaign.pk}/quality").status_code in (401, 403)


def test_moderators_may_read_any_campaign(computed):
    campaign, _ = computed
    client = APIClient()
    client.force_authenticate(factories.rewards_moderator())
    assert client.get(f"/api/v1/campaigns/{campaign.pk}/quality").status_code == 200


def test_consensus_is_paginated_weakest_first_and_filterable(lab_client, computed):
    campaign, _ = computed
    body = lab_client.get(f"/api/v1/campaigns/{campaign.pk}/consensus?page_size=20").json()
    assert body["count"] == 160 and len(body["results"]) == 20
    margins = [row["margin"] for row in body["results"]]
    assert margins == sorted(margins)
    row = body["results"][0]
    assert set(row) == {"task", "external_id", "state", "ranks", "margin", "pairs", "n_raters", "method",
                        "computed_at"}
    weak = lab_client.get(f"/api/v1/campaigns/{campaign.pk}/consensus?max_margin=0.5").json()
    assert weak["count"] < 160 and all(r["margin"] <= 0.5 for r in weak["results"])
    bad = lab_client.get(f"/api/v1/campaigns/{campaign.pk}/consensus?state=nope")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "state"


def test_recompute_queues_the_job_and_answers_202(lab_client, lab, django_capture_on_commit_callbacks):
    campaign, _, _ = planted_campaign(lab=lab)
    with django_capture_on_commit_callbacks(execute=True):
        response = lab_client.post(f"/api/v1/campaigns/{campaign.pk}/quality/recompute")
    assert response.status_code == 202 and response.json() == {"queued": True, "campaign": campaign.pk}
    assert QualityReport.objects.filter(campaign=campaign).count() == 1


def test_quality_before_any_judgment_is_empty_not_an_error(lab_client, campaign):
    body = lab_client.get(f"/api/v1/campaigns/{campaign.pk}/quality").json()
    assert body["version"] is None and body["alpha_nominal"] is None and body["raters"] == []
    assert body["consensus"]["tasks"] == 0


def test_handles_are_stable_per_campaign_and_differ_between_campaigns(settings):
    settings.DATADAO_HANDLE_SECRET = "s3cret"
    handle = rater_handle(1, 7)
    assert handle == rater_handle(1, 7) != rater_handle(2, 7)
    assert handle.startswith("r-") and len(handle) == 12
    settings.DATADAO_HANDLE_SECRET = "other"
    assert rater_handle(1, 7) != handle  # not guessable without the secret
