"""Schema fuzzing: schemathesis drives every operation of the OpenAPI schema in-process.

Authenticated as a lab member (token header), or as an expert for the
expert-only operations, against a campaign with tasks, judgments, a quality
report, an export and a dispute. Path ids point at those rows, so most
requests reach the views' real work rather than stopping at a 404. Two
checks: no server errors, and every documented response matches its
schema. Examples per operation are few (``FUZZ_EXAMPLES``, default 6) so
the whole run stays well under a minute; raise it locally to dig deeper.
"""
from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

schemathesis = pytest.importorskip("schemathesis")

from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from tests import factories  # noqa: E402

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
EXPERT_PATHS = ("/api/v1/assignments/", "/api/v1/me/stake", "/api/v1/me/unstake")


@pytest.fixture
def api_schema(db):
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from datadao.wsgi import application

    # Like Django's test client: requests must not close the test's connection (its transaction holds the data).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_world(db, tmp_path, settings):
    from moderation import services as disputes
    from annotations.handles import rater_handle
    from annotations.models import Assignment
    from exports.models import Export
    from annotations.quality import services as quality_services
    from rewards import services

    cache.clear()
    settings.DATADAO_EXPORT_ROOT = str(tmp_path)
    lab = factories.LabFactory()
    lab_user = factories.lab_member(lab)
    expert = factories.ExpertFactory(wallet_address=factories.wallet("fuzz"))
    raters = [expert] + [factories.ExpertFactory() for _ in range(2)]
    campaign = factories.open_campaign(lab=lab, task_count=6, reward_per_judgment=10)
    tasks = [factories.TaskFactory(campaign=campaign) for _ in range(6)]
    factories.judgments_bulk([{"task": t, "expert": e, "ranks": [1, 2] if (k + i) % 3 else [2, 1]}
                              for k, t in enumerate(tasks[:5]) for i, e in enumerate(raters)])
    quality_services.campaign_quality_compute(campaign_id=campaign.pk)
    now = timezone.now()
    lease = Assignment.objects.create(task=tasks[5], expert=expert, campaign=campaign, display_order=[0, 1],
                                      leased_at=now, expires_at=now + timedelta(minutes=20))
    tasks[5].filled = 1
    tasks[5].save(update_fields=["filled"])
    factories.lab_deposit(lab, 10**9)
    factories.expert_deposit(expert, 10**8)
    services.stake_bond(expert=expert, amount=10**7)
    (tmp_path / "train.jsonl").write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    export = Export.objects.create(campaign=campaign, format="trl_preference", state="done",
                                   train_file="train.jsonl", sha256_train="0" * 64)
    dispute, _ = disputes.dispute_open_lab(
        user=lab_user, campaign_id=campaign.pk, task_external_id=tasks[0].external_id,
        rater=rater_handle(campaign.pk, expert.pk), statement="The rater ignored the guidelines on dosing.")
    epoch = factories.EpochFactory(campaign=campaign, index=0)
    # Data sales and generation: a purchase of another lab's data, a generation job.
    from datavalue.models import GenerationJob
    from rewards.models import DataPurchase

    seller = factories.open_campaign(data_for_sale=True, data_price=10)
    sold = Export.objects.create(campaign=seller, format="trl_preference", state="done", train_file="train.jsonl",
                                 sha256_train="0" * 64)
    purchase = DataPurchase.objects.create(buyer=lab, campaign=seller, export=sold, price=10, fee_bps=500,
                                           use="research", licence="CC-BY-4.0")
    job = GenerationJob.objects.create(campaign=campaign, checkpoint="tiny", checkpoint_path=str(tmp_path / "tiny"))
    return {
        "lab_token": factories.api_token(lab_user), "expert_token": factories.api_token(expert.user),
        "campaign_id": campaign.pk, "export_id": export.pk, "dispute_id": dispute.pk, "assignment_id": lease.pk,
        "epoch_id": epoch.pk, "address": expert.wallet_address, "purchase_id": purchase.pk, "job_id": job.pk,
    }


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, fuzz_world):
    for name in list(case.path_parameters or {}):
        if name in fuzz_world:
            case.path_parameters[name] = fuzz_world[name]
    token = fuzz_world["expert_token"] if case.path.startswith(EXPERT_PATHS) else fuzz_world["lab_token"]
    cache.clear()  # throttles would answer 429 to a fuzzer long before a person
    case.call_and_validate(headers={"Authorization": f"Token {token}"},
                           checks=[not_a_server_error, response_schema_conformance])
