"""Task import: JSON array, JSONL upload, line-numbered errors, all-or-nothing, idempotent."""
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from annotations.models import Campaign, Response, Task
from tests import factories

pytestmark = pytest.mark.django_db


def url(campaign):
    return f"/api/v1/campaigns/{campaign.id}/tasks/import"


def row(i, **overrides):
    base = {
        "external_id": f"ext-{i}",
        "prompt": f"Question {i}: what dose of amoxicillin for a child of 20 kg?",
        "responses": [{"model": "m-a", "text": f"Answer A {i}"}, {"model": "m-b", "text": f"Answer B {i}"}],
        "metadata": {"source": "unit-test"},
    }
    base.update(overrides)
    return base


def jsonl(rows) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode() + b"\n"


def upload(client, campaign, content: bytes):
    f = SimpleUploadedFile("tasks.jsonl", content, content_type="application/x-ndjson")
    return client.post(url(campaign), {"file": f}, format="multipart")


def test_json_array_import_creates_tasks_and_responses(lab_client, campaign):
    response = lab_client.post(url(campaign), [row(1), row(2)], format="json")
    assert response.status_code == 201, response.content
    assert response.json() == {"created": 2, "skipped": 0, "duplicates": [], "duplicates_total": 0}
    task = Task.objects.get(campaign=campaign, external_id="ext-1")
    assert [r.text for r in task.responses.order_by("position")] == ["Answer A 1", "Answer B 1"]
    assert task.target_overlap == campaign.overlap and task.state == "open"
    campaign.refresh_from_db()
    assert campaign.task_count == 2


def test_jsonl_upload_with_chat_prompt_and_gold(lab_client, campaign):
    chat = [{"role": "system", "content": "You are a doctor."}, {"role": "user", "content": "Fever for 3 days?"}]
    content = jsonl([row(1, prompt=chat), row(2, gold={"ranking": ["B", "A"]}), ""])
    response = upload(lab_client, campaign, content)
    assert response.status_code == 201, response.content
    assert Task.objects.get(external_id="ext-1").prompt == chat
    gold = Task.objects.get(external_id="ext-2")
    assert gold.is_gold and gold.gold == [2, 1]


def test_jsonl_raw_body(lab_client, campaign):
    response = lab_client.generic(
        "POST", url(campaign), jsonl([row(1), row(2), row(3)]), content_type="application/x-ndjson",
    )
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 3


def test_reimport_is_idempotent(lab_client, campaign):
    first = lab_client.post(url(campaign), [row(1), row(2)], format="json").json()
    assert (first["created"], first["skipped"]) == (2, 0)
    again = lab_client.post(url(campaign), [row(1), row(2), row(3)], format="json").json()
    assert (again["created"], again["skipped"], again["duplicates"]) == (1, 2, [])
    assert Task.objects.filter(campaign=campaign).count() == 3
    campaign.refresh_from_db()
    assert campaign.task_count == 3


@pytest.mark.parametrize(
    "bad, field, fragment",
    [
        ({"prompt": ""}, "prompt", "must not be empty"),
        ({"prompt": 42}, "prompt", "string or a list of chat messages"),
        ({"prompt": [{"role": "wizard", "content": "hi"}]}, "prompt[0].role", "role must be one of"),
        ({"prompt": [{"role": "user", "content": ""}]}, "prompt[0].content", "non-empty"),
        ({"responses": [{"text": "only one"}]}, "responses", "exactly 2 responses"),
        ({"responses": [{"text": "a"}, {"text": ""}]}, "responses[1].text", "non-empty"),
        ({"responses": [{"text": "a"}, "b"]}, "responses[1]", "must be an object"),
        ({"external_id": ""}, "external_id", "required"),
        ({"external_id": "x" * 201}, "external_id", "at most 200"),
        ({"metadata": [1, 2]}, "metadata", "must be an object"),
        ({"gold": {"ranking": ["A", "A"]}}, "gold.ranking", "more than once"),
        ({"gold": {"ranking": ["A"]}}, "gold.ranking", "missing B"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_each_kind_of_bad_row_is_reported_with_line_and_field(lab_client, campaign, bad, field, fragment):
    rows = [row(1), row(2), row(3, **bad)]
    response = upload(lab_client, campaign, jsonl(rows))
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert errors[0]["line"] == 3
    assert errors[0]["field"] == field
    assert fragment in errors[0]["message"]
    assert Task.objects.count() == 0 and Response.objects.count() == 0


def test_invalid_json_line_and_duplicate_ids_rejected_whole(lab_client, campaign):
    content = jsonl([row(1), "{not json", row(3), row(1)])
    response = upload(lab_client, campaign, content)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors[0]["line"] == 2 and "invalid JSON" in errors[0]["message"]
    assert errors[1]["line"] == 4 and "duplicate external_id" in errors[1]["message"] and "line 1" in errors[1]["message"]
    assert Task.objects.count() == 0


def test_error_list_is_capped_at_100(lab_client, campaign):
    rows = [row(i, prompt="") for i in range(150)]
    body = upload(lab_client, campaign, jsonl(rows)).json()
    assert len(body["errors"]) == 100
    assert body["truncated"] is True


def test_failure_midway_through_writing_leaves_nothing(lab_client, campaign, monkeypatch):
    from annotations import services

    calls = {"n": 0}
    real = services._insert_tasks

    def failing(campaign, rows):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real(campaign, rows)

    monkeypatch.setattr(services, "_insert_tasks", failing)
    monkeypatch.setattr(services, "IMPORT_CHUNK", 10)
    with pytest.raises(RuntimeError):
        lab_client.post(url(campaign), [row(i) for i in range(25)], format="json")
    assert Task.objects.count() == 0 and Response.objects.count() == 0
    campaign.refresh_from_db()
    assert campaign.task_count == 0


def test_wrong_k_for_campaign(lab_client, lab):
    campaign = factories.CampaignFactory(lab=lab, responses_per_task=3)
    response = lab_client.post(url(campaign), [row(1)], format="json")
    assert response.status_code == 400
    assert "exactly 3 responses" in response.json()["errors"][0]["message"]


def test_empty_upload_is_an_error(lab_client, campaign):
    response = upload(lab_client, campaign, b"\n\n")
    assert response.status_code == 400
    assert "no task rows" in response.json()["errors"][0]["message"]


def test_body_that_is_not_rows(lab_client, campaign):
    response = lab_client.post(url(campaign), {"rows": []}, format="json")
    assert response.status_code == 400
    assert "JSON array" in response.json()["errors"][0]["message"]


@override_settings(DATADAO_MAX_IMPORT_BYTES=1000)
def test_oversized_file_gets_413(lab_client, campaign):
    response = upload(lab_client, campaign, jsonl([row(i) for i in range(50)]))
    assert response.status_code == 413
    assert "limit is 1000 bytes" in response.json()["errors"][0]["message"]
    assert Task.objects.count() == 0


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=500)
def test_oversized_json_body_gets_413_with_hint(lab_client, campaign):
    response = lab_client.post(url(campaign), [row(i) for i in range(20)], format="json")
    assert response.status_code == 413
    assert "JSONL file" in response.json()["errors"][0]["message"]


def test_closed_campaign_takes_no_tasks(lab_client, lab):
    campaign = factories.CampaignFactory(lab=lab, status=Campaign.Status.CLOSED)
    response = lab_client.post(url(campaign), [row(1)], format="json")
    assert response.status_code == 409
    assert Task.objects.count() == 0


def test_expert_cannot_import(expert_client, campaign):
    assert expert_client.post(url(campaign), [row(1)], format="json").status_code == 403


def test_lab_lists_tasks_filtered(lab_client, campaign):
    lab_client.post(url(campaign), [row(1), row(2)], format="json")
    body = lab_client.get(f"/api/v1/campaigns/{campaign.id}/tasks/", {"external_id": "ext-2"}).json()
    assert body["count"] == 1
    assert body["results"][0]["responses"][1]["text"] == "Answer B 2"


# Duplicate prompts: reported, never refused.


def test_prompts_repeated_within_an_upload_are_reported_not_refused(lab_client, campaign):
    prompt = "What dose of amoxicillin for a child of 20 kg?"
    rows = [row(1, prompt=prompt), row(2), row(3, prompt="  what DOSE of amoxicillin\nfor a child of 20 kg? "),
            row(4, prompt=prompt)]
    response = lab_client.post(url(campaign), rows, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["created"] == 4 and body["duplicates_total"] == 2
    assert body["duplicates"] == [
        {"line": 3, "external_id": "ext-3", "duplicate_of": "ext-1", "duplicate_of_line": 1},
        {"line": 4, "external_id": "ext-4", "duplicate_of": "ext-1", "duplicate_of_line": 1},
    ]


def test_prompts_repeating_tasks_already_in_the_campaign_are_reported(lab_client, campaign):
    chat = [{"role": "user", "content": "Fever for 3 days?"}]
    lab_client.post(url(campaign), [row(1), row(2, prompt=chat)], format="json")
    again = lab_client.post(url(campaign), [
        row(1),  # already imported: skipped, not a duplicate of itself
        row(3, prompt=row(1)["prompt"].upper()),
        row(4, prompt=[{"role": "user", "content": "fever for\t3 DAYS?\r\n"}]),
        row(5),  # a new prompt
        row(6, prompt=row(1)["prompt"]),  # repeats ext-1 (in the campaign) and line 2 of this upload
    ], format="json").json()
    assert (again["created"], again["skipped"], again["duplicates_total"]) == (4, 1, 3)
    assert again["duplicates"] == [
        {"line": 2, "external_id": "ext-3", "duplicate_of": "ext-1", "duplicate_of_line": None},
        {"line": 3, "external_id": "ext-4", "duplicate_of": "ext-2", "duplicate_of_line": None},
        {"line": 5, "external_id": "ext-6", "duplicate_of": "ext-1", "duplicate_of_line": None},
    ]
    assert Task.objects.filter(campaign=campaign).count() == 6


def test_duplicate_reporting_can_be_switched_off(lab_client, campaign, settings):
    settings.DATADAO_IMPORT_REPORT_DUPLICATES = False
    lab_client.post(url(campaign), [row(1)], format="json")
    body = lab_client.post(url(campaign), [row(2, prompt=row(1)["prompt"]), row(3, prompt=row(1)["prompt"])],
                           format="json").json()
    assert (body["created"], body["duplicates"], body["duplicates_total"]) == (2, [], 0)
