"""Editing a campaign: ``services.campaign_update`` and ``PATCH /api/v1/campaigns/{id}/``.

While a draft every field may change; once open (or paused) only what leaves work already done valid, the
overlap only upwards; a closed campaign not at all. A refusal is a 409 that names the field and why.
"""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotations import services
from annotations.models import AuditEvent, Campaign, Task
from annotations.services import ServiceError
from tests import factories

pytestmark = pytest.mark.django_db


def url(campaign: Campaign) -> str:
    return f"/api/v1/campaigns/{campaign.pk}/"


def errors(response) -> list[dict]:
    return response.json()["errors"]


# --------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------


def test_a_draft_changes_every_field_and_its_tasks_follow_the_overlap(campaign, lab_user):
    task = factories.TaskFactory(campaign=campaign, target_overlap=3)
    changes = {
        "name": "Renamed", "domain": "law", "guidelines": "New text.", "strength_scale": False,
        "attribute_axes": ["clarity"], "rationale_required": False, "rationale_min_length": 5, "overlap": 2,
        "max_overlap": 4, "gold_rate": 0.2, "lease_minutes": 30, "reward_per_judgment": 7, "min_stake": 9,
        "licence": "CC0-1.0", "allowed_uses": ["research"], "consensus_min_margin": 0.7, "gold_bar": 0.65,
        "q_min": 0.55, "pay_confidence": 0.9, "gold_weight": 3.0, "stake_beta": 0.5, "slash_fraction": 0.2,
        "data_for_sale": True, "data_price": 100, "data_value_weighting": True, "data_value_cap": 3.0,
    }
    assert set(changes) | {"responses_per_task"} == set(services.CAMPAIGN_EDITABLE)
    updated = services.campaign_update(campaign=campaign, actor=lab_user, **changes)
    campaign.refresh_from_db()
    assert {name: getattr(campaign, name) for name in changes} == changes == {
        name: getattr(updated, name) for name in changes}
    task.refresh_from_db()
    assert task.target_overlap == 2
    event = AuditEvent.objects.get(action="campaign.update")
    assert event.actor == lab_user and event.details["overlap"] == [3, 2] and event.object_id == str(campaign.pk)


def test_a_draft_keeps_k_once_tasks_are_imported(campaign):
    services.campaign_update(campaign=campaign, responses_per_task=3)
    assert Campaign.objects.get(pk=campaign.pk).responses_per_task == 3
    Campaign.objects.filter(pk=campaign.pk).update(task_count=1)
    campaign.refresh_from_db()
    with pytest.raises(ServiceError) as refused:
        services.campaign_update(campaign=campaign, responses_per_task=2)
    assert refused.value.status == 409 and refused.value.field == "responses_per_task"
    assert refused.value.message.startswith("responses_per_task: can change only before tasks are imported")


def test_a_sale_needs_a_price_and_max_overlap_stays_above_overlap(campaign):
    with pytest.raises(ServiceError) as refused:
        services.campaign_update(campaign=campaign, data_for_sale=True)
    assert refused.value.field == "data_price" and refused.value.status == 400
    with pytest.raises(ServiceError) as refused:
        services.campaign_update(campaign=campaign, overlap=6)
    assert refused.value.field == "max_overlap" and refused.value.message == "must be at least overlap (6)."
    assert Campaign.objects.get(pk=campaign.pk).overlap == 3


def test_an_open_campaign_raises_overlap_for_its_open_tasks_only(open_campaign, expert):
    waiting = factories.TaskFactory(campaign=open_campaign, target_overlap=3)
    done = factories.TaskFactory(campaign=open_campaign, target_overlap=3, state=Task.State.COMPLETE)
    factories.rated_judgment(task=waiting, expert=expert, ranks=[1, 2])
    services.campaign_update(campaign=open_campaign, overlap=4, max_overlap=6, name="Renamed")
    waiting.refresh_from_db()
    done.refresh_from_db()
    assert (waiting.target_overlap, done.target_overlap) == (4, 3)
    with pytest.raises(ServiceError) as refused:
        services.campaign_update(campaign=open_campaign, overlap=3)
    assert refused.value.status == 409
    assert refused.value.message == ("overlap: can only rise once the campaign has opened and experts may have "
                                     "rated (it is 4).")


def test_a_value_sent_unchanged_is_no_change_and_never_refused(open_campaign):
    same = {name: getattr(open_campaign, name) for name in services.CAMPAIGN_EDITABLE}
    services.campaign_update(campaign=open_campaign, **same)
    assert not AuditEvent.objects.filter(action="campaign.update").exists()


# --------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------


def test_patch_edits_a_draft_and_answers_what_the_detail_get_shows(lab_client, campaign):
    response = lab_client.patch(url(campaign), {"name": "Renamed", "reward_per_judgment": 5, "q_min": 0.6,
                                                "attribute_axes": ["clarity"]}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == lab_client.get(url(campaign)).json()
    body = response.json()
    assert (body["name"], body["reward_per_judgment"], body["q_min"], body["attribute_axes"]) == (
        "Renamed", 5, 0.6, ["clarity"])
    assert "progress" in body


def test_patch_validates_like_create(lab_client, campaign):
    response = lab_client.patch(url(campaign), {"overlap": 0, "domain": "astrology", "lab": "elsewhere"},
                                format="json")
    assert response.status_code == 400
    created = lab_client.post("/api/v1/campaigns/", {"name": "x", "overlap": 0, "domain": "astrology"},
                              format="json")
    assert sorted((e.get("field"), e["message"]) for e in errors(response)) == sorted(
        (e.get("field"), e["message"]) for e in errors(created))
    response = lab_client.patch(url(campaign), {"overlap": 4, "max_overlap": 2}, format="json")
    assert response.status_code == 400 and errors(response)[0] == {"field": "max_overlap",
                                                                   "message": "must be at least overlap."}
    assert Campaign.objects.get(pk=campaign.pk).overlap == 3


def test_an_open_campaign_refuses_a_draft_only_field_naming_it(lab_client, open_campaign):
    response = lab_client.patch(url(open_campaign), {"name": "Renamed", "reward_per_judgment": 10**9},
                                format="json")
    assert response.status_code == 409
    [error] = errors(response)
    assert error["field"] == "reward_per_judgment"
    assert error["message"].startswith("reward_per_judgment: can change only while the campaign is a draft")
    open_campaign.refresh_from_db()
    assert open_campaign.reward_per_judgment == 0 and open_campaign.name != "Renamed"  # all or nothing


def test_overlap_rises_but_does_not_fall_once_rated(lab_client, open_campaign, expert):
    factories.rated_judgment(task=factories.TaskFactory(campaign=open_campaign), expert=expert, ranks=[1, 2])
    assert lab_client.patch(url(open_campaign), {"overlap": 4}, format="json").status_code == 200
    response = lab_client.patch(url(open_campaign), {"overlap": 3}, format="json")
    assert response.status_code == 409
    assert errors(response) == [{"field": "overlap", "message": "overlap: can only rise once the campaign has "
                                                                "opened and experts may have rated (it is 4)."}]
    response = lab_client.patch(url(open_campaign), {"max_overlap": 4}, format="json")
    assert response.status_code == 409 and errors(response)[0]["field"] == "max_overlap"
    assert Campaign.objects.get(pk=open_campaign.pk).overlap == 4


def test_a_closed_campaign_refuses_every_edit(lab_client, campaign):
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.CLOSED)
    response = lab_client.patch(url(campaign), {"name": "Renamed"}, format="json")
    assert response.status_code == 409
    assert errors(response) == [{"field": "status", "message": "a closed campaign cannot be edited."}]


def test_another_labs_member_gets_404_and_changes_nothing(other_lab_client, campaign):
    assert other_lab_client.patch(url(campaign), {"name": "Mine now"}, format="json").status_code == 404
    assert other_lab_client.get(url(campaign)).status_code == 404
    assert Campaign.objects.get(pk=campaign.pk).name != "Mine now"


def test_a_member_of_another_lab_cannot_patch_even_an_open_campaign(open_campaign):
    outsider = factories.lab_member(factories.LabFactory())
    client = APIClient()
    client.force_authenticate(outsider)
    assert client.patch(url(open_campaign), {"overlap": 9, "max_overlap": 9}, format="json").status_code == 404
    assert Campaign.objects.get(pk=open_campaign.pk).overlap == 3


def test_an_expert_cannot_patch(expert_client, open_campaign):
    response = expert_client.patch(url(open_campaign), {"name": "Renamed"}, format="json")
    assert response.status_code == 403
    assert Campaign.objects.get(pk=open_campaign.pk).name != "Renamed"
