"""The experts' fast lane (datadao.hotpath): token requests of the rating loop skip DRF's machinery, with the
same answers as the DRF view; anything unusual still goes through DRF."""
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.views import APIView

from annotations.api_experts import AssignmentNextApi
from annotations.models import Assignment, Judgment
from tests import factories

pytestmark = pytest.mark.django_db

NEXT = "/api/v1/assignments/next"
RATIONALE = "B names the contraindication; A misses it."


def judgment_url(assignment_id):
    return f"/api/v1/assignments/{assignment_id}/judgment"


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(user)}")
    return client


@pytest.fixture
def drf_calls(monkeypatch):
    """How many requests DRF's dispatch handled (the fast lane never calls it)."""
    calls = []
    dispatch = APIView.dispatch

    def counting(self, request, *args, **kwargs):
        calls.append(request.path)
        return dispatch(self, request, *args, **kwargs)

    monkeypatch.setattr(APIView, "dispatch", counting)
    return calls


def test_token_loop_takes_the_fast_lane_and_answers_like_drf(expert, open_campaign, drf_calls):
    first = factories.TaskFactory(campaign=open_campaign, responses=["first upload", "second upload"])
    second = factories.TaskFactory(campaign=open_campaign, prompt="Another question?", responses=["one", "two"])
    fast = token_client(expert.user)
    lease = fast.post(NEXT, {"campaign": open_campaign.pk}, format="json")
    assert lease.status_code == 200 and lease["Content-Type"] == "application/json"
    body = lease.json()
    assignment = Assignment.objects.get(pk=body["id"])
    # Next draws among the most-needed tasks: either may be served, shown as leased.
    task, texts = {first.pk: (first, ["first upload", "second upload"]), second.pk: (second, ["one", "two"])}[
        assignment.task_id]
    assert body["task"]["id"] == task.pk and body["task"]["prompt"] == task.prompt
    assert body["task"]["responses"] == [{"slot": "A", "text": texts[assignment.display_order[0]]},
                                         {"slot": "B", "text": texts[assignment.display_order[1]]}]
    assert body["expires_at"].endswith("Z")
    # The same lease through DRF (session-style authentication) reads the same.
    drf = APIClient()
    drf.force_authenticate(expert.user)
    assert drf.post(NEXT, {"campaign": open_campaign.pk}, format="json").json() == body
    assert drf_calls == [NEXT]

    submitted = fast.post(judgment_url(body["id"]), {"ranking": ["B", "A"], "strength": 2, "rationale": f"  {RATIONALE} ",
                                                     "flags": ["unsafe"]}, format="json")
    assert submitted.status_code == 201, submitted.content
    again = fast.post(judgment_url(body["id"]), {"ranking": ["B", "A"], "strength": 2, "rationale": RATIONALE,
                                                 "flags": ["unsafe"]}, format="json")
    assert again.status_code == 200 and again.json() == submitted.json()
    judgment = Judgment.objects.get()
    assert judgment.rationale == RATIONALE and judgment.flags == ["unsafe"]
    assert submitted.json()["ranking"] == ["B", "A"] and submitted.json()["strength"] == 2
    assert submitted.json()["submitted_at"].endswith("Z")
    assert drf_calls == [NEXT]  # neither submit went through DRF


def test_unusual_input_goes_through_drf_with_its_answers(expert, open_campaign, drf_calls):
    factories.TaskFactory(campaign=open_campaign)
    client = token_client(expert.user)
    bad = client.post(NEXT, {"campaign": "abc"}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "campaign"
    broken = client.post(NEXT, data=b"{not json", content_type="application/json")
    assert broken.status_code == 400 and "JSON parse error" in broken.json()["errors"][0]["message"]
    # DRF coerces a numeric string; the fast lane leaves such input to it.
    lease = client.post(NEXT, {"campaign": str(open_campaign.pk)}, format="json")
    assert lease.status_code == 200
    lease_id = lease.json()["id"]
    coerced = client.post(judgment_url(lease_id), {"ranking": ["A", "B"], "strength": "-1", "rationale": RATIONALE},
                          format="json")
    assert coerced.status_code == 201 and coerced.json()["strength"] == -1
    assert drf_calls == [NEXT, NEXT, NEXT, judgment_url(lease_id)]


@pytest.mark.parametrize("body, field", [
    ({"ranking": None, "rationale": RATIONALE}, "ranking"),
    ({"ranking": ["A", "B"], "rationale": "nul \x00 inside"}, "rationale"),
    ({"ranking": ["A", "B"], "rationale": RATIONALE, "flags": ["not-a-flag"]}, "flags"),
    ({"ranking": ["A", "B"], "rationale": RATIONALE, "ratings": {"correctness": {"A": "x"}}}, "ratings"),
    ({"ranking": ["A", "B"], "rationale": RATIONALE, "strength": True}, "strength"),
])
def test_invalid_judgment_fields_get_drfs_field_errors(expert, open_campaign, body, field, drf_calls):
    factories.TaskFactory(campaign=open_campaign)
    client = token_client(expert.user)
    lease_id = client.post(NEXT, {"campaign": open_campaign.pk}, format="json").json()["id"]
    response = client.post(judgment_url(lease_id), body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"].startswith(field)
    assert drf_calls == [judgment_url(lease_id)]
    assert not Judgment.objects.exists()


def test_who_may_call_is_decided_as_before(expert, open_campaign, lab_user, drf_calls):
    factories.TaskFactory(campaign=open_campaign)
    lab = token_client(lab_user).post(NEXT, {"campaign": open_campaign.pk}, format="json")
    assert lab.status_code == 403 and lab.json()["errors"][0]["message"] == "Only experts may do this."
    unknown = APIClient()
    unknown.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    refused = unknown.post(NEXT, {"campaign": open_campaign.pk}, format="json")
    assert refused.status_code == 401 and refused.json()["errors"][0]["message"] == "Invalid token."
    expert.user.is_active = False
    expert.user.save()
    assert token_client(expert.user).post(NEXT, {"campaign": open_campaign.pk}, format="json").status_code == 401


def test_service_refusals_in_the_fast_lane_keep_the_error_shape(expert, open_campaign, drf_calls):
    factories.TaskFactory(campaign=open_campaign)
    client = token_client(expert.user)
    law = token_client(factories.ExpertFactory(domains=["law"]).user)
    refused = law.post(NEXT, {"campaign": open_campaign.pk}, format="json")
    assert refused.status_code == 403 and "not vetted in Medicine" in refused.json()["errors"][0]["message"]
    missing = client.post(NEXT, {"campaign": 999999}, format="json")
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "campaign"
    lease_id = client.post(NEXT, {"campaign": open_campaign.pk}, format="json").json()["id"]
    other = law.post(judgment_url(lease_id), {"ranking": ["A", "B"], "strength": -1, "rationale": RATIONALE},
                     format="json")
    assert other.status_code == 404
    Assignment.objects.filter(pk=lease_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    late = client.post(judgment_url(lease_id), {"ranking": ["A", "B"], "strength": -1, "rationale": RATIONALE},
                       format="json")
    assert late.status_code == 409 and "lease on this task expired" in late.json()["errors"][0]["message"]
    assert not Judgment.objects.exists() and drf_calls == []


def test_a_fast_request_is_counted_once_by_the_throttle(expert, open_campaign, monkeypatch, drf_calls):
    factories.TaskFactory(campaign=open_campaign)
    from django.core.cache import cache

    cache.clear()
    monkeypatch.setitem(AssignmentNextApi.throttle_classes[0].THROTTLE_RATES, "assignment", "3/min")
    client = token_client(expert.user)
    answers = [client.post(NEXT, {"campaign": open_campaign.pk}, format="json").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    assert drf_calls == [NEXT]  # the refusal comes from DRF, with its Retry-After
    cache.clear()


def test_a_body_in_another_charset_is_read_by_drf(expert, open_campaign, drf_calls):
    factories.TaskFactory(campaign=open_campaign)
    client = token_client(expert.user)
    lease_id = client.post(NEXT, {"campaign": open_campaign.pk}, format="json").json()["id"]
    # In Latin-1 these bytes (C3 A9) are "Ã©"; read as UTF-8 they would become "é".
    body = f'{{"ranking": ["A", "B"], "strength": -1, "rationale": "Caf\u00c3\u00a9 au lait: {RATIONALE}"}}'
    response = client.post(judgment_url(lease_id), data=body.encode("latin-1"),
                           content_type="application/json; charset=latin-1")
    assert response.status_code == 201, response.content
    assert Judgment.objects.get().rationale.startswith("Caf\u00c3\u00a9 au lait")
    assert drf_calls == [judgment_url(lease_id)]
