"""Shared fixtures for the whole suite."""
import os

import pytest
from hypothesis import settings as hypothesis_settings

# Property tests explore new examples on every developer's run; CI (.ci/run sets HYPOTHESIS_PROFILE=ci)
# replays a fixed derivation, so a landing never hangs on an example found by chance that day. What
# exploration finds goes into the test as an @example.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Django-free maths tests (agreement, weighting, Merkle) must also collect
# without Django settings, so nothing Django-bound is imported at module level.


def _api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def api_client():
    return _api_client()


@pytest.fixture
def lab(db):
    from tests import factories

    return factories.LabFactory()


@pytest.fixture
def lab_user(lab):
    from tests import factories

    return factories.lab_member(lab)


@pytest.fixture
def lab_client(lab_user):
    from tests import factories

    client = _api_client()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(lab_user)}")
    return client


@pytest.fixture
def other_lab_client(db):
    from tests import factories

    user = factories.lab_member(factories.LabFactory())
    client = _api_client()
    client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(user)}")
    return client


@pytest.fixture
def campaign(lab):
    from tests import factories

    return factories.CampaignFactory(lab=lab)


@pytest.fixture
def expert(db):
    from tests import factories

    return factories.ExpertFactory()


@pytest.fixture
def expert_client(expert):
    client = _api_client()
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


@pytest.fixture
def open_campaign(lab):
    """An open medicine campaign, K=2 with the strength scale, no gold, rationale of 20+ characters."""
    from tests import factories

    return factories.open_campaign(lab=lab)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker, django_db_keepdb):
    """pytest-django drops the test database at the end of the run (unless --reuse-db), but PostgreSQL
    refuses while another session uses it ("being accessed by other users"), and pytest-django only warns:
    a connection a test's thread left open would leave the database behind. End those sessions first."""
    yield
    if django_db_keepdb:
        return
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
