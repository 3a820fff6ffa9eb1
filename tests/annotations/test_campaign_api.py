"""Campaign API: create, list, detail, state changes, and who may do what."""
import pytest
from rest_framework.test import APIClient

from annotations.models import Campaign
from tests import factories

pytestmark = pytest.mark.django_db

CAMPAIGNS = "/api/v1/campaigns/"


def create(client, **overrides):
    body = {"name": "Clinical triage", "domain": "medicine", "guidelines": "Be careful.", **overrides}
    return client.post(CAMPAIGNS, body, format="json")


def test_lab_creates_campaign_with_documented_defaults(lab_client, lab):
    response = create(lab_client)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["lab"] == lab.slug
    assert body["status"] == "draft"
    assert body["overlap"] == 3 and body["max_overlap"] == 5 and body["responses_per_task"] == 2
    assert body["q_min"] == 0.5 and body["slash_fraction"] == 0.1
    assert Campaign.objects.get(pk=body["id"]).lab == lab


def test_create_rejects_bad_fields_with_field_errors(lab_client):
    response = create(lab_client, domain="astrology", overlap=4, max_overlap=2, responses_per_task=9)
    assert response.status_code == 400
    fields = {e.get("field") for e in response.json()["errors"]}
    assert {"domain", "responses_per_task"} <= fields
    assert Campaign.objects.count() == 0


def test_max_overlap_below_overlap_is_refused(lab_client):
    response = create(lab_client, overlap=4, max_overlap=2)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "max_overlap"


def test_member_of_two_labs_must_name_one(lab_client, lab_user):
    second = factories.LabFactory()
    second.members.add(lab_user)
    assert create(lab_client).status_code == 400
    response = create(lab_client, lab=second.slug)
    assert response.status_code == 201
    assert response.json()["lab"] == second.slug


def test_anonymous_and_experts_cannot_create(api_client, expert_client):
    assert create(api_client).status_code == 401
    response = create(expert_client)
    assert response.status_code == 403
    assert "errors" in response.json()


def test_list_shows_only_own_lab_campaigns_paginated(lab_client, lab):
    for _ in range(3):
        factories.CampaignFactory(lab=lab)
    factories.CampaignFactory()  # another lab's
    body = lab_client.get(CAMPAIGNS, {"page_size": 2}).json()
    assert body["count"] == 3
    assert len(body["results"]) == 2
    assert body["next"]


def test_other_lab_gets_404_on_detail_and_actions(other_lab_client, campaign):
    assert other_lab_client.get(f"{CAMPAIGNS}{campaign.id}/").status_code == 404
    for action in ("open", "pause", "close"):
        assert other_lab_client.post(f"{CAMPAIGNS}{campaign.id}/{action}").status_code == 404
    assert other_lab_client.post(f"{CAMPAIGNS}{campaign.id}/tasks/import", [], format="json").status_code == 404
    assert other_lab_client.get(f"{CAMPAIGNS}{campaign.id}/tasks/").status_code == 404
    campaign.refresh_from_db()
    assert campaign.status == "draft"


def test_detail_has_progress(lab_client, campaign):
    factories.TaskFactory(campaign=campaign)
    factories.TaskFactory(campaign=campaign, judgment_count=0)
    body = lab_client.get(f"{CAMPAIGNS}{campaign.id}/").json()
    assert body["progress"]["tasks"] == 2
    assert body["progress"]["judgments_wanted"] == 6
    assert body["progress"]["completion"] == 0.0


def test_open_needs_tasks_then_lifecycle(lab_client, campaign):
    response = lab_client.post(f"{CAMPAIGNS}{campaign.id}/open")
    assert response.status_code == 409
    assert "import at least one task" in response.json()["errors"][0]["message"]
    factories.TaskFactory(campaign=campaign)
    Campaign.objects.filter(pk=campaign.pk).update(task_count=1)
    assert lab_client.post(f"{CAMPAIGNS}{campaign.id}/open").json()["status"] == "open"
    assert lab_client.post(f"{CAMPAIGNS}{campaign.id}/pause").json()["status"] == "paused"
    assert lab_client.post(f"{CAMPAIGNS}{campaign.id}/pause").status_code == 409
    assert lab_client.post(f"{CAMPAIGNS}{campaign.id}/open").json()["status"] == "open"
    closed = lab_client.post(f"{CAMPAIGNS}{campaign.id}/close").json()
    assert closed["status"] == "closed" and closed["closed_at"]
    assert lab_client.post(f"{CAMPAIGNS}{campaign.id}/open").status_code == 409


def test_vetted_expert_sees_open_campaigns_in_domain_without_lab_settings(expert_client, expert):
    visible = factories.CampaignFactory(status="open", domain="medicine")
    factories.CampaignFactory(status="draft", domain="medicine")
    factories.CampaignFactory(status="open", domain="law")
    body = expert_client.get(CAMPAIGNS).json()
    assert [c["id"] for c in body["results"]] == [visible.id]
    assert "q_min" not in body["results"][0] and "lab" not in body["results"][0]
    assert expert_client.get(f"{CAMPAIGNS}{visible.id}/").status_code == 200


def test_unvetted_user_sees_nothing(db):
    user = factories.UserFactory()
    client = APIClient()
    client.force_authenticate(user)
    assert client.get(CAMPAIGNS).status_code == 403


def test_schema_is_valid_openapi(api_client, db):
    from drf_spectacular.validation import validate_schema
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    assert "/api/v1/campaigns/{campaign_id}/tasks/import" in schema["paths"]
    response = api_client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert api_client.get("/api/v1/docs/").status_code == 200


def test_schema_generates_without_warnings(tmp_path, db):
    """Every endpoint documents itself cleanly: no component clashes, no guessed types."""
    from django.core.management import call_command

    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(target))
    assert "/api/v1/campaigns/{campaign_id}/tasks/import" in target.read_text()
