"""Shared fixtures for the whole suite."""
import pytest
from rest_framework.test import APIClient

from tests import factories


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def lab(db):
    return factories.LabFactory()


@pytest.fixture
def lab_user(lab):
    return factories.lab_member(lab)


@pytest.fixture
def lab_client(lab_user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(lab_user)}")
    return client


@pytest.fixture
def other_lab_client(db) -> APIClient:
    user = factories.lab_member(factories.LabFactory())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(user)}")
    return client


@pytest.fixture
def campaign(lab):
    return factories.CampaignFactory(lab=lab)


@pytest.fixture
def expert(db):
    return factories.ExpertFactory()


@pytest.fixture
def expert_client(expert) -> APIClient:
    client = APIClient()
    client.force_authenticate(expert.user)
    return client


@pytest.fixture(autouse=True)
def _celery_in_process(request):
    """Unit tests run Celery tasks in-process even when a broker is configured;
    tests marked ``integration`` talk to the real broker and worker."""
    from datadao.celery import app

    if request.node.get_closest_marker("integration"):
        yield
        return
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous
