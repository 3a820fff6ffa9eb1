"""API tokens: one query brings the user, their expert profile and their roles; DRF's refusals are kept."""
import pytest
from rest_framework.test import APIClient

from annotations import roles
from datadao.authentication import ApiTokenAuthentication
from tests import factories

pytestmark = pytest.mark.django_db

NEXT = "/api/v1/assignments/next"


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(user)}")
    return client


def test_an_expert_token_leases_work_and_the_profile_and_roles_come_with_the_user(open_campaign, django_assert_num_queries):
    factories.TaskFactory(campaign=open_campaign)
    expert = factories.ExpertFactory()
    response = token_client(expert.user).post(NEXT, {"campaign": open_campaign.pk}, format="json")
    assert response.status_code == 200, response.content

    user, token = ApiTokenAuthentication().authenticate_credentials(factories.api_token(expert.user))
    assert token.user == user and user.pk == expert.user.pk
    with django_assert_num_queries(0):  # nothing left to ask the database
        assert user.expert.pk == expert.pk and user.expert.state == expert.state
        assert roles.has_role(user, roles.EXPERT) and not roles.has_role(user, roles.LAB)


def test_a_lab_token_has_no_expert_profile_and_is_refused_work(open_campaign, lab_user, django_assert_num_queries):
    user, _ = ApiTokenAuthentication().authenticate_credentials(factories.api_token(lab_user))
    with django_assert_num_queries(0):
        assert not hasattr(user, "expert")
        assert roles.has_role(user, roles.LAB)
    client = token_client(lab_user)
    assert client.get("/api/v1/campaigns/").status_code == 200
    refused = client.post(NEXT, {"campaign": open_campaign.pk}, format="json")
    assert refused.status_code == 403


def test_unknown_tokens_and_inactive_users_are_refused(open_campaign):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = client.post(NEXT, {"campaign": open_campaign.pk}, format="json")
    assert response.status_code == 401
    assert "Invalid token" in response.json()["errors"][0]["message"]

    expert = factories.ExpertFactory()
    client = token_client(expert.user)
    expert.user.is_active = False
    expert.user.save(update_fields=["is_active"])
    response = client.post(NEXT, {"campaign": open_campaign.pk}, format="json")
    assert response.status_code == 401
    assert "inactive" in response.json()["errors"][0]["message"]


def test_a_moderator_token_reaches_moderator_endpoints_only_with_staff_status():
    moderator = factories.rewards_moderator()
    user, _ = ApiTokenAuthentication().authenticate_credentials(factories.api_token(moderator))
    assert roles.is_moderator(user)
    moderator.is_staff = False
    moderator.save(update_fields=["is_staff"])
    user, _ = ApiTokenAuthentication().authenticate_credentials(factories.api_token(moderator))
    assert not roles.is_moderator(user)
