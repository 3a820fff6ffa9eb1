"""Expert API: next, judgment, skip — shapes, mapping to upload order, idempotency, refusals."""
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from annotations.models import Assignment, Judgment, Task
from tests import factories

pytestmark = pytest.mark.django_db

NEXT = "/api/v1/assignments/next"
RATIONALE = "B names the contraindication; A misses it."


def judgment_url(assignment_id):
    return f"/api/v1/assignments/{assignment_id}/judgment"


def lease(client, campaign, *, order=None):
    response = client.post(NEXT, {"campaign": campaign.pk}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    if order is not None:  # pin the random display order to test the mapping
        Assignment.objects.filter(pk=body["id"]).update(display_order=order)
    return body


def client_for(expert) -> APIClient:
    client = APIClient()
    client.force_authenticate(expert.user)
    return client


def post_judgment(client, assignment_id, **body):
    body.setdefault("rationale", RATIONALE)
    return client.post(judgment_url(assignment_id), body, format="json")


# --- next -------------------------------------------------------------------------


def test_next_returns_the_task_in_my_order_without_model_names(expert_client, open_campaign):
    task = factories.TaskFactory(campaign=open_campaign, responses=["first upload", "second upload"])
    body = lease(expert_client, open_campaign)
    assert set(body) == {"id", "expires_at", "task"}
    assert body["task"]["id"] == task.pk and body["task"]["prompt"] == task.prompt
    order = Assignment.objects.get(pk=body["id"]).display_order
    texts = ["first upload", "second upload"]
    assert body["task"]["responses"] == [
        {"slot": "A", "text": texts[order[0]]}, {"slot": "B", "text": texts[order[1]]},
    ]
    assert "model" not in str(body) and "is_gold" not in body["task"]


def test_next_gives_the_same_lease_back_then_204_when_done(expert_client, open_campaign):
    factories.TaskFactory(campaign=open_campaign)
    first = lease(expert_client, open_campaign)
    assert lease(expert_client, open_campaign)["id"] == first["id"]
    assert post_judgment(expert_client, first["id"], ranking=["A", "B"], strength=-1).status_code == 201
    response = expert_client.post(NEXT, {"campaign": open_campaign.pk}, format="json")
    assert response.status_code == 204


def test_next_refuses_ineligible_and_non_experts(open_campaign, lab_client, api_client):
    factories.TaskFactory(campaign=open_campaign)
    law = client_for(factories.ExpertFactory(domains=["law"]))
    response = law.post(NEXT, {"campaign": open_campaign.pk}, format="json")
    assert response.status_code == 403
    assert "not vetted in Medicine" in response.json()["errors"][0]["message"]
    assert lab_client.post(NEXT, {"campaign": open_campaign.pk}, format="json").status_code == 403
    assert api_client.post(NEXT, {"campaign": open_campaign.pk}, format="json").status_code == 401
    missing = client_for(factories.ExpertFactory()).post(NEXT, {"campaign": 999999}, format="json")
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "campaign"


# --- judgment ----------------------------------------------------------------------


def test_k2_strength_is_stored_in_upload_order(expert_client, open_campaign, expert):
    factories.TaskFactory(campaign=open_campaign)
    body = lease(expert_client, open_campaign, order=[1, 0])  # slot A shows the second upload
    response = post_judgment(expert_client, body["id"], ranking=["A", "B"], strength=-3)
    assert response.status_code == 201, response.content
    judgment = Judgment.objects.get()
    assert judgment.display_order == [1, 0]
    assert judgment.ranks == [2, 1]  # the second upload is best
    assert judgment.strength == 3  # "A much better" = "second upload much better"
    out = response.json()
    assert out["ranking"] == ["A", "B"] and out["strength"] == -3  # echoed as the expert saw it


def test_k2_strength_unswapped_keeps_its_sign(expert_client, open_campaign):
    factories.TaskFactory(campaign=open_campaign)
    body = lease(expert_client, open_campaign, order=[0, 1])
    post_judgment(expert_client, body["id"], ranking=["B", "A"], strength=1)
    judgment = Judgment.objects.get()
    assert (judgment.ranks, judgment.strength) == ([2, 1], 1)


def test_strength_must_agree_with_ranking_and_be_given(expert_client, open_campaign):
    factories.TaskFactory(campaign=open_campaign)
    body = lease(expert_client, open_campaign)
    contradiction = post_judgment(expert_client, body["id"], ranking=["A", "B"], strength=2)
    assert contradiction.status_code == 400
    assert contradiction.json()["errors"][0]["field"] == "strength"
    missing = post_judgment(expert_client, body["id"], ranking=["A", "B"])
    assert missing.json()["errors"][0]["field"] == "strength"
    tie = post_judgment(expert_client, body["id"], ranking=[["A", "B"]], strength=0)
    assert tie.status_code == 201
    assert Judgment.objects.get().ranks == [1, 1]


def test_ties_among_three_map_back_to_positions(expert_client):
    campaign = factories.open_campaign(responses_per_task=3, strength_scale=False)
    factories.TaskFactory(campaign=campaign)
    body = lease(expert_client, campaign, order=[2, 0, 1])
    response = post_judgment(expert_client, body["id"], ranking=[["A", "C"], "B"])
    assert response.status_code == 201, response.content
    # A = upload 2, C = upload 1 tied first; B = upload 0 third.
    assert Judgment.objects.get().ranks == [3, 1, 1]
    assert response.json()["ranking"] == [["A", "C"], "B"]


def test_strength_is_refused_where_the_campaign_has_no_scale(expert_client):
    campaign = factories.open_campaign(responses_per_task=3)
    factories.TaskFactory(campaign=campaign)
    body = lease(expert_client, campaign)
    response = post_judgment(expert_client, body["id"], ranking=["A", "B", "C"], strength=1)
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "strength"


def test_ranking_must_name_every_slot_once(expert_client, open_campaign):
    factories.TaskFactory(campaign=open_campaign)
    body = lease(expert_client, open_campaign)
    for ranking, message in ((["A"], "missing B"), (["A", "A"], "more than once"), (["A", "Z"], "unknown slot")):
        response = post_judgment(expert_client, body["id"], ranking=ranking, strength=-1)
        assert response.status_code == 400
        assert message in response.json()["errors"][0]["message"]
    assert Judgment.objects.count() == 0


def test_rationale_has_the_campaign_minimum_length(expert_client, open_campaign):
    factories.TaskFactory(campaign=open_campaign)
    body = lease(expert_client, open_campaign)
    response = post_judgment(expert_client, body["id"], ranking=["A", "B"], strength=-1, rationale="  too short  ")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["field"] == "rationale" and "at least 20 characters (you wrote 9)" in error["message"]


def test_attribute_ratings_are_validated_and_stored_per_position(expert_client):
    campaign = factories.open_campaign(attribute_axes=["correctness", "safety"])
    factories.TaskFactory(campaign=campaign)
    body = lease(expert_client, campaign, order=[1, 0])
    bad = post_judgment(
        expert_client, body["id"], ranking=["A", "B"], strength=-1,
        ratings={"correctness": {"A": 6, "B": 2}, "tone": {"A": 1, "B": 1}},
    )
    assert bad.status_code == 400
    fields = {e["field"] for e in bad.json()["errors"]}
    assert {"ratings.tone", "ratings.correctness.A", "ratings.safety"} <= fields
    good = post_judgment(
        expert_client, body["id"], ranking=["A", "B"], strength=-1,
        ratings={"correctness": {"A": 5, "B": 2}, "safety": {"A": 4, "B": 1}},
    )
    assert good.status_code == 201, good.content
    assert Judgment.objects.get().ratings == {"correctness": [2, 5], "safety": [1, 4]}
    assert good.json()["ratings"] == {"correctness": {"A": 5, "B": 2}, "safety": {"A": 4, "B": 1}}


def test_flags_are_a_subset_of_the_known_ones(expert_client, open_campaign):
    factories.TaskFactory(campaign=open_campaign)
    body = lease(expert_client, open_campaign)
    bad = post_judgment(expert_client, body["id"], ranking=["A", "B"], strength=-1, flags=["boring"])
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"].startswith("flags")
    good = post_judgment(
        expert_client, body["id"], ranking=["A", "B"], strength=-1, flags=["unsafe", "personal_data", "unsafe"],
    )
    assert good.status_code == 201
    assert Judgment.objects.get().flags == ["unsafe", "personal_data"]


def test_submitting_twice_records_one_judgment(expert_client, open_campaign):
    task = factories.TaskFactory(campaign=open_campaign)
    body = lease(expert_client, open_campaign)
    first = post_judgment(expert_client, body["id"], ranking=["A", "B"], strength=-2)
    second = post_judgment(expert_client, body["id"], ranking=["A", "B"], strength=-2)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert Judgment.objects.count() == 1
    task.refresh_from_db()
    assert (task.judgment_count, task.filled) == (1, 1)
    different = post_judgment(expert_client, body["id"], ranking=["B", "A"], strength=2)
    assert different.status_code == 409 and "different judgment" in different.json()["errors"][0]["message"]


def test_submitting_after_the_lease_expired_is_refused(expert_client, open_campaign):
    task = factories.TaskFactory(campaign=open_campaign)
    body = lease(expert_client, open_campaign)
    Assignment.objects.filter(pk=body["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = post_judgment(expert_client, body["id"], ranking=["A", "B"], strength=-1)
    assert response.status_code == 409
    assert "lease on this task expired" in response.json()["errors"][0]["message"]
    assert Judgment.objects.count() == 0
    assert Assignment.objects.get(pk=body["id"]).state == Assignment.State.EXPIRED
    assert Task.objects.get(pk=task.pk).filled == 0


def test_someone_elses_assignment_is_not_found(expert_client, open_campaign):
    factories.TaskFactory(campaign=open_campaign)
    body = lease(expert_client, open_campaign)
    intruder = client_for(factories.ExpertFactory())
    response = post_judgment(intruder, body["id"], ranking=["A", "B"], strength=-1)
    assert response.status_code == 404
    assert intruder.post(f"/api/v1/assignments/{body['id']}/skip", {"reason": "x"}, format="json").status_code == 404
    assert Assignment.objects.get(pk=body["id"]).state == Assignment.State.LEASED


def test_time_spent_is_measured_by_the_server(expert_client, open_campaign):
    factories.TaskFactory(campaign=open_campaign)
    body = lease(expert_client, open_campaign)
    Assignment.objects.filter(pk=body["id"]).update(leased_at=timezone.now() - timedelta(seconds=95))
    response = post_judgment(expert_client, body["id"], ranking=["A", "B"], strength=-1, time_spent_ms=1)
    assert 95_000 <= response.json()["time_spent_ms"] < 100_000


def test_gold_judgments_are_scored_but_not_revealed(expert_client):
    campaign = factories.open_campaign(gold_rate=0.5)
    gold = factories.GoldTaskFactory(campaign=campaign)  # gold: the first upload is best
    expert = factories.ExpertFactory()
    right = client_for(expert)
    from annotations import assignment as svc

    class AlwaysGold:
        def random(self):
            return 0.0

        def shuffle(self, items):
            items.reverse()

    chosen = svc.assignment_next(expert=expert, campaign=campaign, rng=AlwaysGold())
    assert chosen.task_id == gold.pk and chosen.display_order == [1, 0]
    response = post_judgment(right, chosen.pk, ranking=["B", "A"], strength=2)  # B shows the first upload
    assert response.status_code == 201
    assert "gold" not in str(response.json())
    wrong_expert = factories.ExpertFactory()
    wrong_lease = svc.assignment_next(expert=wrong_expert, campaign=campaign, rng=AlwaysGold())
    post_judgment(client_for(wrong_expert), wrong_lease.pk, ranking=["A", "B"], strength=-2)
    verdicts = dict(Judgment.objects.values_list("expert_id", "gold_correct"))
    assert verdicts == {expert.pk: True, wrong_expert.pk: False}
    assert Judgment.objects.filter(is_gold=True).count() == 2


# --- skip ---------------------------------------------------------------------------


def test_skip_needs_a_reason_and_frees_the_place(expert_client, open_campaign):
    task = factories.TaskFactory(campaign=open_campaign)
    body = lease(expert_client, open_campaign)
    url = f"/api/v1/assignments/{body['id']}/skip"
    assert expert_client.post(url, {}, format="json").status_code == 400
    response = expert_client.post(url, {"reason": "Outside my expertise"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"id": body["id"], "state": "skipped", "skip_reason": "Outside my expertise"}
    assert Task.objects.get(pk=task.pk).filled == 0
    after = post_judgment(expert_client, body["id"], ranking=["A", "B"], strength=-1)
    assert after.status_code == 409 and "skipped" in after.json()["errors"][0]["message"]


def test_schema_documents_the_expert_paths(db):
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    for path in ("/api/v1/assignments/next", "/api/v1/assignments/{assignment_id}/judgment",
                 "/api/v1/assignments/{assignment_id}/skip"):
        assert path in schema["paths"]
