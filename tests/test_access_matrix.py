"""Access control matrix: every page and API endpoint, every role, exactly the expected answer.

Roles: anonymous, an expert (who owns the expert-side rows in the world
below), another expert, a member of the lab owning the campaign, a member
of another lab, and a moderator (staff in the moderator group). Another
tenant's rows answer 404, never 403, so their existence does not leak.

``test_every_route_has_a_matrix_row`` walks the URL conf: a new endpoint
without a row here fails the suite. Admin URLs are generated per model and
checked by walking the admin registry instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.contrib import admin
from django.core.cache import cache
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from annotations import notifications, tokens_service
from annotations.handles import rater_handle
from annotations.models import Assignment, Campaign, QualificationAttempt
from exports.models import Export
from datavalue.models import GenerationJob
from moderation import services as disputes
from rewards import services
from rewards.models import DataPurchase, Epoch, EpochClaim, EpochReward
from tests import factories

pytestmark = pytest.mark.django_db
ROLES = ("anon", "expert", "other_expert", "lab", "other_lab", "moderator")
TOKEN = 1_000_000
STATEMENT = "This decision is wrong; the evidence shows the opposite."


# --------------------------------------------------------------------------
# The world every request runs against
# --------------------------------------------------------------------------


@dataclass
class World:
    users: dict
    ids: dict = field(default_factory=dict)
    secrets: dict = field(default_factory=dict)  # role -> identity strings nobody else may see


def build_world(tmp_path, settings) -> World:
    cache.clear()  # throttles count per user id
    settings.DATADAO_EXPORT_ROOT = str(tmp_path)
    expert = factories.ExpertFactory(user__username="expert-ann-q7", user__email="ann.q7@example.org",
                                     wallet_address=factories.wallet("ann"))
    other = factories.ExpertFactory(user__username="expert-bob-q7", user__email="bob.q7@example.org")
    lab = factories.LabFactory(name="Lab One Q7")
    lab_user = factories.lab_member(lab, username="lab-lee-q7")
    other_lab_user = factories.lab_member(factories.LabFactory(name="Lab Two Q7"), username="lab-max-q7")
    moderator = factories.rewards_moderator(username="mod-mia-q7")

    campaign = factories.open_campaign(lab=lab, task_count=3, reward_per_judgment=TOKEN)
    other_campaign = factories.open_campaign(lab=other_lab_user.labs.get(), task_count=1, data_for_sale=True,
                                             data_price=TOKEN)
    tasks = [factories.TaskFactory(campaign=campaign) for _ in range(3)]
    factories.TaskFactory(campaign=other_campaign)
    now = timezone.now()
    lease = Assignment.objects.create(task=tasks[0], expert=expert, campaign=campaign, display_order=[1, 0],
                                      leased_at=now, expires_at=now + timedelta(minutes=20))
    tasks[0].filled = 1
    tasks[0].save(update_fields=["filled"])
    judged = factories.rated_judgment(task=tasks[1], expert=expert, ranks=[1, 2])
    factories.rated_judgment(task=tasks[1], expert=other, ranks=[2, 1])
    voided = factories.rated_judgment(task=tasks[2], expert=expert, ranks=[2, 1], voided=True)
    attempt = QualificationAttempt.objects.create(expert=expert, domain="medicine", started_at=now, pass_mark=0.8)

    factories.lab_deposit(lab, 100 * TOKEN)
    factories.expert_deposit(expert, 20 * TOKEN)
    services.stake_bond(expert=expert, amount=10 * TOKEN)
    slash = services.stake_slash(expert=expert, fraction=0.1, key="matrix:1", reason="gold", campaign=campaign)
    open_slash = services.stake_slash(expert=expert, fraction=0.1, key="matrix:2", reason="gold", campaign=campaign)
    dispute, _ = disputes.dispute_open_expert(expert=expert, user=expert.user, kind="slash", slash_id=slash.pk,
                                              statement=STATEMENT)
    lab_dispute, _ = disputes.dispute_open_lab(user=lab_user, campaign_id=campaign.pk,
                                               task_external_id=tasks[1].external_id,
                                               rater=rater_handle(campaign.pk, expert.pk), statement=STATEMENT)
    notifications.notification_send(user=expert.user, kind="test", title="For Ann only q7")

    (tmp_path / "train.jsonl").write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    export = Export.objects.create(campaign=campaign, format="trl_preference", state="done",
                                   train_file="train.jsonl", sha256_train="0" * 64)
    epoch = factories.EpochFactory(campaign=campaign, index=0, state=Epoch.State.SETTLED, merkle_root="0x" + "0" * 64)
    EpochReward.objects.create(epoch=epoch, expert=expert, judgments=1, agreement=0.5, quality=0.5, stake=0.0,
                               weight=1.0, amount=100, wallet_address=expert.wallet_address)
    EpochClaim.objects.create(epoch=epoch, address=expert.wallet_address, index=0, amount=100, proof=b"\0" * 32)

    # Data sales and generation: Lab One bought an export of Lab Two's campaign; Lab One runs a generation job.
    sold = Export.objects.create(campaign=other_campaign, format="trl_preference", state="done",
                                 train_file="train.jsonl", sha256_train="0" * 64, requested_by=lab_user)
    purchase = DataPurchase.objects.create(buyer=lab, campaign=other_campaign, export=sold, bought_by=lab_user,
                                           price=TOKEN, fee_bps=500, use="research", licence="CC-BY-4.0")
    checkpoint = tmp_path / "checkpoints" / "tiny"
    checkpoint.mkdir(parents=True)
    (checkpoint / "config.json").write_text("{}")
    settings.DATADAO_CHECKPOINTS = {"tiny": str(checkpoint)}
    job = GenerationJob.objects.create(campaign=campaign, checkpoint="tiny", checkpoint_path=str(checkpoint),
                                       state=GenerationJob.State.RUNNING)
    api_token, _key = tokens_service.api_token_create(user=expert.user, name="Ann's rating script")

    world = World(users={"anon": None, "expert": expert.user, "other_expert": other.user, "lab": lab_user,
                         "other_lab": other_lab_user, "moderator": moderator})
    world.ids = {
        "campaign": campaign.pk, "other_campaign": other_campaign.pk, "lease": lease.pk, "judgment": judged.pk,
        "voided": voided.pk, "attempt": attempt.pk, "export": export.pk, "epoch": epoch.pk,
        "address": expert.wallet_address, "dispute": dispute.pk, "lab_dispute": lab_dispute.pk,
        "open_slash": open_slash.pk, "task": tasks[1].external_id, "handle": rater_handle(campaign.pk, expert.pk),
        "purchase": purchase.pk, "job": job.pk, "api_token": api_token.pk,
    }
    world.secrets = {
        "expert": ["expert-ann-q7", "ann.q7@example.org"], "other_expert": ["expert-bob-q7", "bob.q7@example.org"],
        "lab": ["lab-lee-q7"], "other_lab": ["lab-max-q7"],
    }
    return world


# --------------------------------------------------------------------------
# The matrix: (name, variant) -> method, path, body, expected status per role
# --------------------------------------------------------------------------


def _e(anon, expert, other_expert, lab, other_lab, moderator):
    return dict(zip(ROLES, (anon, expert, other_expert, lab, other_lab, moderator)))


LOGIN = 302  # pages send the anonymous to the login page
API_ANON = 401

MATRIX: dict[tuple[str, str], tuple[str, str, object, dict]] = {
    # ---- pages
    ("home", ""): ("get", "/", None, _e(200, 200, 200, 200, 200, 200)),
    ("login", ""): ("get", "/accounts/login/", None, _e(200, 200, 200, 200, 200, 200)),
    ("logout", ""): ("post", "/accounts/logout/", {}, _e(302, 302, 302, 302, 302, 302)),
    ("annotations_pages:expert-apply", ""): ("get", "/expert/apply/", None, _e(200, 200, 200, 200, 200, 200)),
    ("annotations_pages:expert-status", ""): ("get", "/expert/", None, _e(LOGIN, 200, 200, 302, 302, 302)),
    ("annotations_pages:qualification-start", ""): (
        "post", "/expert/qualification/start", {"domain": "law"}, _e(LOGIN, 302, 302, 404, 404, 404)),
    ("annotations_pages:qualification-test", ""): (
        "get", "/expert/qualification/{attempt}/", None, _e(LOGIN, 200, 404, 404, 404, 404)),
    ("annotations_pages:rate-campaigns", ""): ("get", "/rate/", None, _e(LOGIN, 200, 200, 302, 302, 302)),
    ("annotations_pages:rate", ""): ("get", "/rate/{campaign}/", None, _e(LOGIN, 200, 200, 404, 404, 404)),
    ("annotations_pages:rate-next", ""): ("post", "/rate/{campaign}/next", {}, _e(LOGIN, 302, 302, 404, 404, 404)),
    ("annotations_pages:rate-submit", ""): (
        "post", "/rate/assignment/{lease}/judgment",
        {"strength": "-2", "rationale": "A is correct and cites the guideline dose."},
        _e(LOGIN, 302, 404, 404, 404, 404)),
    ("annotations_pages:rate-skip", ""): (
        "post", "/rate/assignment/{lease}/skip", {"reason": "Outside my expertise"}, _e(LOGIN, 302, 404, 404, 404, 404)),
    ("annotations_pages:history", ""): ("get", "/rate/history/", None, _e(LOGIN, 200, 200, 404, 404, 404)),
    ("annotations_pages:lab-campaigns", ""): ("get", "/labs/campaigns/", None, _e(LOGIN, 404, 404, 200, 200, 404)),
    ("annotations_pages:lab-campaign-quality", ""): (
        "get", "/labs/campaigns/{campaign}/quality", None, _e(LOGIN, 404, 404, 200, 404, 404)),
    ("annotations_pages:disputes", ""): ("get", "/disputes/", None, _e(LOGIN, 200, 200, 200, 200, 404)),
    ("annotations_pages:disputes", "open"): (
        "post", "/disputes/", {"kind": "slash", "slash": "{open_slash}", "statement": STATEMENT},
        _e(LOGIN, 302, 302, 404, 404, 404)),
    ("annotations_pages:notifications", ""): ("get", "/notifications/", None, _e(LOGIN, 200, 200, 200, 200, 200)),
    ("annotations_pages:notifications-read", ""): (
        "post", "/notifications/read", {}, _e(LOGIN, 302, 302, 302, 302, 302)),
    ("rewards_pages:wallet", ""): ("get", "/wallet/", None, _e(LOGIN, 200, 200, 403, 403, 403)),
    ("rewards_pages:stake", ""): ("post", "/wallet/stake", {"stake-amount": "1"}, _e(LOGIN, 302, 302, 403, 403, 403)),
    ("rewards_pages:unstake", ""): (
        "post", "/wallet/unstake", {"unstake-amount": "1"}, _e(LOGIN, 302, 302, 403, 403, 403)),
    ("rewards_pages:claim-download", ""): (
        "get", "/wallet/claims/{epoch}.json", None, _e(LOGIN, 200, 404, 403, 403, 403)),
    # ---- API: campaigns and tasks
    ("annotations_api:campaign-list", ""): ("get", "/api/v1/campaigns/", None, _e(API_ANON, 200, 200, 200, 200, 403)),
    ("annotations_api:campaign-list", "create"): (
        "post", "/api/v1/campaigns/", {"name": "New", "domain": "law"}, _e(API_ANON, 403, 403, 201, 201, 403)),
    ("annotations_api:campaign-detail", ""): (
        "get", "/api/v1/campaigns/{campaign}/", None, _e(API_ANON, 200, 200, 200, 404, 403)),
    ("annotations_api:campaign-detail", "other-lab"): (
        "get", "/api/v1/campaigns/{other_campaign}/", None, _e(API_ANON, 200, 200, 404, 200, 403)),
    ("annotations_api:campaign-detail", "edit"): (
        "patch", "/api/v1/campaigns/{campaign}/", {"name": "Renamed"}, _e(API_ANON, 403, 403, 200, 404, 403)),
    ("annotations_api:campaign-detail", "edit-other-lab"): (
        "patch", "/api/v1/campaigns/{other_campaign}/", {"name": "Renamed"}, _e(API_ANON, 403, 403, 404, 200, 403)),
    ("annotations_api:campaign-open", ""): (
        "post", "/api/v1/campaigns/{campaign}/open", {}, _e(API_ANON, 403, 403, 409, 404, 403)),
    ("annotations_api:campaign-pause", ""): (
        "post", "/api/v1/campaigns/{campaign}/pause", {}, _e(API_ANON, 403, 403, 200, 404, 403)),
    ("annotations_api:campaign-close", ""): (
        "post", "/api/v1/campaigns/{campaign}/close", {}, _e(API_ANON, 403, 403, 200, 404, 403)),
    ("annotations_api:task-import", ""): (
        "post", "/api/v1/campaigns/{campaign}/tasks/import",
        [{"external_id": "new-1", "prompt": "Q?", "responses": [{"model": "m", "text": "a"}, {"model": "n", "text": "b"}]}],
        _e(API_ANON, 403, 403, 201, 404, 403)),
    ("annotations_api:task-list", ""): (
        "get", "/api/v1/campaigns/{campaign}/tasks/", None, _e(API_ANON, 403, 403, 200, 404, 403)),
    # ---- API: rating
    ("annotations_api:assignment-next", ""): (
        "post", "/api/v1/assignments/next", {"campaign": "{campaign}"}, _e(API_ANON, 200, 200, 403, 403, 403)),
    ("annotations_api:judgment-submit", ""): (
        "post", "/api/v1/assignments/{lease}/judgment",
        {"ranking": ["B", "A"], "strength": 2, "rationale": "B is correct and cites the guideline dose."},
        _e(API_ANON, 201, 404, 403, 403, 403)),
    ("annotations_api:assignment-skip", ""): (
        "post", "/api/v1/assignments/{lease}/skip", {"reason": "Outside my expertise"},
        _e(API_ANON, 200, 404, 403, 403, 403)),
    # ---- API: quality and exports
    ("annotations_api:campaign-quality", ""): (
        "get", "/api/v1/campaigns/{campaign}/quality", None, _e(API_ANON, 403, 403, 200, 404, 200)),
    ("annotations_api:campaign-quality-recompute", ""): (
        "post", "/api/v1/campaigns/{campaign}/quality/recompute", {}, _e(API_ANON, 403, 403, 202, 404, 403)),
    ("annotations_api:campaign-consensus", ""): (
        "get", "/api/v1/campaigns/{campaign}/consensus", None, _e(API_ANON, 403, 403, 200, 404, 200)),
    ("annotations_api:campaign-exports", ""): (
        "get", "/api/v1/campaigns/{campaign}/exports", None, _e(API_ANON, 403, 403, 200, 404, 403)),
    ("annotations_api:campaign-exports", "request"): (
        "post", "/api/v1/campaigns/{campaign}/exports", {"format": "trl_preference"},
        _e(API_ANON, 403, 403, 202, 404, 403)),
    ("annotations_api:export-detail", ""): (
        "get", "/api/v1/exports/{export}/", None, _e(API_ANON, 403, 403, 200, 404, 403)),
    ("annotations_api:export-download", ""): (
        "get", "/api/v1/exports/{export}/download", None, _e(API_ANON, 403, 403, 200, 404, 403)),
    # ---- API: disputes and notifications
    ("annotations_api:disputes", ""): ("get", "/api/v1/disputes", None, _e(API_ANON, 200, 200, 200, 200, 403)),
    ("annotations_api:disputes", "expert"): (
        "post", "/api/v1/disputes", {"kind": "slash", "slash": "{open_slash}", "statement": STATEMENT},
        _e(API_ANON, 201, 404, 403, 403, 403)),
    ("annotations_api:disputes", "lab"): (
        "post", "/api/v1/disputes", {"kind": "judgment_quality", "campaign": "{campaign}", "task_external_id": "{task}",
                                     "rater": "{handle}", "statement": STATEMENT + " Again."},
        _e(API_ANON, 403, 403, 200, 404, 403)),
    ("annotations_api:dispute-detail", ""): (
        "get", "/api/v1/disputes/{dispute}", None, _e(API_ANON, 200, 404, 404, 404, 403)),
    ("annotations_api:dispute-detail", "lab"): (
        "get", "/api/v1/disputes/{lab_dispute}", None, _e(API_ANON, 200, 404, 200, 404, 403)),
    ("annotations_api:me-notifications", ""): (
        "get", "/api/v1/me/notifications", None, _e(API_ANON, 200, 200, 200, 200, 200)),
    ("annotations_api:me-notifications-read", ""): (
        "post", "/api/v1/me/notifications/read", {}, _e(API_ANON, 200, 200, 200, 200, 200)),
    # ---- API: rewards
    ("rewards_api:me", ""): ("get", "/api/v1/me/", None, _e(API_ANON, 200, 200, 200, 200, 200)),
    ("rewards_api:me-ledger", ""): ("get", "/api/v1/me/ledger", None, _e(API_ANON, 200, 200, 200, 200, 200)),
    ("rewards_api:me-stake", ""): (
        "post", "/api/v1/me/stake", {"amount": TOKEN}, _e(API_ANON, 201, 400, 403, 403, 403)),
    ("rewards_api:me-unstake", ""): (
        "post", "/api/v1/me/unstake", {"amount": TOKEN}, _e(API_ANON, 201, 400, 403, 403, 403)),
    ("rewards_api:campaign-fund", ""): (
        "post", "/api/v1/campaigns/{campaign}/fund", {"amount": TOKEN}, _e(API_ANON, 403, 403, 201, 404, 403)),
    ("rewards_api:epoch-claim", ""): (
        "get", "/api/v1/epochs/{epoch}/claims/{address}", None, _e(200, 200, 200, 200, 200, 200)),
    ("rewards_api:cumulative-claim", ""): (
        "get", "/api/v1/claims/{address}", None, _e(200, 200, 200, 200, 200, 200)),
    # ---- API: documentation (public)
    ("schema", ""): ("get", "/api/v1/schema/", None, _e(200, 200, 200, 200, 200, 200)),
    ("swagger-ui", ""): ("get", "/api/v1/docs/", None, _e(200, 200, 200, 200, 200, 200)),
    ("redoc", ""): ("get", "/api/v1/redoc/", None, _e(200, 200, 200, 200, 200, 200)),
}

# Data value (transformers).
MATRIX.update({
    ("annotations_api:campaign-data-value", ""): (
        "get", "/api/v1/campaigns/{campaign}/data-value", None, _e(API_ANON, 403, 403, 200, 404, 200)),
    ("annotations_api:me-data-value", ""): (
        "get", "/api/v1/me/data-value", None, _e(API_ANON, 200, 200, 403, 403, 403)),
})


# Data sales and revenue sharing, candidate generation.
MATRIX.update({
    ("rewards_api:campaign-data-sale", ""): (
        "get", "/api/v1/campaigns/{campaign}/data-sale", None, _e(API_ANON, 403, 403, 200, 404, 403)),
    ("rewards_api:campaign-data-sale", "set"): (
        "post", "/api/v1/campaigns/{campaign}/data-sale", {"for_sale": True, "price": TOKEN},
        _e(API_ANON, 403, 403, 200, 404, 403)),
    ("rewards_api:datasets", ""): ("get", "/api/v1/datasets/", None, _e(API_ANON, 403, 403, 200, 200, 403)),
    # Lab One buys Lab Two's data; Lab Two cannot buy its own campaign.
    ("rewards_api:dataset-purchase", ""): (
        "post", "/api/v1/datasets/{other_campaign}/purchases", {"use": "research", "format": "trl_preference"},
        _e(API_ANON, 403, 403, 201, 400, 403)),
    # Lab One's campaign is not for sale: a 404 for everyone else.
    ("rewards_api:dataset-purchase", "not-for-sale"): (
        "post", "/api/v1/datasets/{campaign}/purchases", {"use": "research", "format": "trl_preference"},
        _e(API_ANON, 403, 403, 400, 404, 403)),
    ("rewards_api:purchases", ""): ("get", "/api/v1/purchases", None, _e(API_ANON, 403, 403, 200, 200, 403)),
    ("rewards_api:purchase-detail", ""): (
        "get", "/api/v1/purchases/{purchase}", None, _e(API_ANON, 403, 403, 200, 404, 403)),
    ("rewards_api:purchase-download", ""): (
        "get", "/api/v1/purchases/{purchase}/download", None, _e(API_ANON, 403, 403, 200, 404, 403)),
    ("annotations_api:campaign-generation-jobs", ""): (
        "get", "/api/v1/campaigns/{campaign}/generation-jobs", None, _e(API_ANON, 403, 403, 200, 404, 403)),
    # The same checkpoint while its job runs: the running job (200), nothing new.
    ("annotations_api:campaign-generation-jobs", "start"): (
        "post", "/api/v1/campaigns/{campaign}/generation-jobs", {"checkpoint": "tiny"},
        _e(API_ANON, 403, 403, 200, 404, 403)),
    ("annotations_api:generation-job-detail", ""): (
        "get", "/api/v1/generation-jobs/{job}/", None, _e(API_ANON, 403, 403, 200, 404, 403)),
    ("annotations_api:generation-job-cancel", ""): (
        "post", "/api/v1/generation-jobs/{job}/cancel", {}, _e(API_ANON, 403, 403, 200, 404, 403)),
})


# Self-service API tokens: anyone signed in, their own tokens only (Ann owns {api_token}).
MATRIX.update({
    ("annotations_pages:api-tokens", ""): ("get", "/account/tokens/", None, _e(LOGIN, 200, 200, 200, 200, 200)),
    ("annotations_pages:api-tokens", "create"): (
        "post", "/account/tokens/", {"name": "Matrix script"}, _e(LOGIN, 200, 200, 200, 200, 200)),
    ("annotations_pages:api-token-revoke", ""): (
        "post", "/account/tokens/{api_token}/revoke", {}, _e(LOGIN, 302, 404, 404, 404, 404)),
    ("annotations_api:me-tokens", ""): ("get", "/api/v1/me/tokens", None, _e(API_ANON, 200, 200, 200, 200, 200)),
    ("annotations_api:me-tokens", "create"): (
        "post", "/api/v1/me/tokens", {"name": "Matrix script"}, _e(API_ANON, 201, 201, 201, 201, 201)),
    ("annotations_api:me-token-revoke", ""): (
        "delete", "/api/v1/me/tokens/{api_token}", None, _e(API_ANON, 204, 404, 404, 404, 404)),
})


class _Upload:
    """A file for a page's upload form that reads whole each time: one row's body serves every role's request."""

    name = "tasks.jsonl"
    content_type = "application/x-ndjson"

    def __init__(self, content: bytes):
        self.content = content

    def read(self) -> bytes:
        return self.content


# The lab console (pages): members of the campaign's lab only; everyone else signed in gets a 404. Opening
# the open campaign is refused by the state machine, with the refusal shown on the console (302).
MATRIX.update({
    ("annotations_pages:lab-campaign-new", ""): ("get", "/labs/campaigns/new/", None, _e(LOGIN, 404, 404, 200, 200, 404)),
    ("annotations_pages:lab-campaign-new", "create"): (
        "post", "/labs/campaigns/new/", {"name": "New", "domain": "law"}, _e(LOGIN, 404, 404, 302, 302, 404)),
    ("annotations_pages:lab-campaign-console", ""): (
        "get", "/labs/campaigns/{campaign}/", None, _e(LOGIN, 404, 404, 200, 404, 404)),
    ("annotations_pages:lab-campaign-edit", ""): (
        "get", "/labs/campaigns/{campaign}/edit/", None, _e(LOGIN, 404, 404, 200, 404, 404)),
    ("annotations_pages:lab-campaign-edit", "save"): (
        "post", "/labs/campaigns/{campaign}/edit/", {"name": "Renamed"}, _e(LOGIN, 404, 404, 302, 404, 404)),
    ("annotations_pages:lab-campaign-open", ""): (
        "post", "/labs/campaigns/{campaign}/open", {}, _e(LOGIN, 404, 404, 302, 404, 404)),
    ("annotations_pages:lab-campaign-pause", ""): (
        "post", "/labs/campaigns/{campaign}/pause", {}, _e(LOGIN, 404, 404, 302, 404, 404)),
    ("annotations_pages:lab-campaign-close", ""): (
        "post", "/labs/campaigns/{campaign}/close", {}, _e(LOGIN, 404, 404, 302, 404, 404)),
    ("annotations_pages:lab-campaign-import", ""): (
        "post", "/labs/campaigns/{campaign}/tasks/import",
        {"file": _Upload(b'{"external_id": "page-1", "prompt": "Q?", "responses": [{"model": "m", "text": "a"}, '
                         b'{"model": "n", "text": "b"}]}\n')},
        _e(LOGIN, 404, 404, 200, 404, 404)),
    ("annotations_pages:lab-campaign-export", ""): (
        "post", "/labs/campaigns/{campaign}/exports", {"format": "trl_preference"}, _e(LOGIN, 404, 404, 302, 404, 404)),
    ("rewards_pages:campaign-fund", ""): (
        "get", "/wallet/campaigns/{campaign}/fund/", None, _e(LOGIN, 404, 404, 200, 404, 404)),
    ("rewards_pages:campaign-fund", "fund"): (
        "post", "/wallet/campaigns/{campaign}/fund/", {"amount": "1", "key": "matrix-fund"},
        _e(LOGIN, 404, 404, 302, 404, 404)),
    ("rewards_pages:campaign-data-sale", ""): (
        "get", "/wallet/campaigns/{campaign}/data-sale/", None, _e(LOGIN, 404, 404, 200, 404, 404)),
    ("rewards_pages:campaign-data-sale", "set"): (
        "post", "/wallet/campaigns/{campaign}/data-sale/", {"for_sale": "on", "price": str(TOKEN)},
        _e(LOGIN, 404, 404, 302, 404, 404)),
    # Each member sees their own lab's ledger; another lab's is a 404 (tests/rewards/test_lab_pages.py).
    ("rewards_pages:lab-ledger", ""): ("get", "/wallet/lab/", None, _e(LOGIN, 404, 404, 200, 200, 404)),
})


def _fill(value, ids):
    if isinstance(value, str):
        filled = value.format(**ids)
        return int(filled) if value.startswith("{") and filled.isdigit() and value != "{task}" else filled
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


def _client(world: World, role: str, *, api: bool):
    user = world.users[role]
    if api:
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(user)}")
        return client
    from django.test import Client

    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _request(world: World, role: str, method: str, path: str, body):
    ids = world.ids
    path = path.format(**ids)
    api = path.startswith("/api/")
    client = _client(world, role, api=api)
    if method == "get":
        return client.get(path)
    if method == "delete":
        return client.delete(path)
    if method == "patch":
        return client.patch(path, _fill(body, ids), format="json")
    if api:
        return client.post(path, _fill(body, ids), format="json")
    return client.post(path, _fill(body, ids))


@pytest.fixture
def world(tmp_path, settings):
    return build_world(tmp_path, settings)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda r: f"{r[0]}[{r[1]}]" if r[1] else r[0])
def test_matrix(world, route, role):
    method, path, body, expected = MATRIX[route]
    response = _request(world, role, method, path, body)
    assert response.status_code == expected[role], (
        f"{role} {method.upper()} {path}: {response.status_code}, expected {expected[role]}"
    )
    if 200 <= response.status_code < 300 and role != "moderator":
        content = b"".join(response.streaming_content) if response.streaming else response.content
        text = content.decode("utf-8", "replace")
        for owner, strings in world.secrets.items():
            if owner == role:
                continue
            for secret in strings:
                assert secret not in text, f"{role} sees {owner}'s identity ({secret}) at {path}"


# --------------------------------------------------------------------------
# Completeness: every route of the URL conf has a row
# --------------------------------------------------------------------------


def _walk(patterns, prefix="", namespace=None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            ns = ":".join(x for x in (namespace, pattern.namespace) if x) if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), ns)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
            yield prefix + str(pattern.pattern), name


def test_every_route_has_a_matrix_row():
    covered = {name for name, _ in MATRIX}
    missing = []
    for route, name in _walk(get_resolver().url_patterns):
        if route.startswith("admin/"):
            continue  # generated per ModelAdmin; see test_admin_matrix
        if name is None or name not in covered:
            missing.append(f"{route} ({name})")
    assert not missing, f"routes without an access-matrix row: {missing}"


# --------------------------------------------------------------------------
# Admin: moderators only (staff status alone is not enough)
# --------------------------------------------------------------------------


# Moderators read the platform's own models; users, groups, tokens and lockout logs are for superusers.
MODERATED_APPS = {"annotations", "datavalue", "exports", "rewards", "moderation"}


def _admin_urls() -> list[tuple[str, str]]:
    urls = [("/admin/", "")]
    for model in admin.site._registry:
        urls.append((f"/admin/{model._meta.app_label}/{model._meta.model_name}/", model._meta.app_label))
    return urls


def test_admin_matrix(client, world):
    staff_only = factories.UserFactory(is_staff=True)
    superuser = factories.UserFactory(is_staff=True, is_superuser=True)
    expected = {"anon": 302, "expert": 403, "other_expert": 403, "lab": 403, "other_lab": 403,
                "staff_only": 403, "superuser": 200}
    users = {**world.users, "staff_only": staff_only, "superuser": superuser}
    failures = []
    for role, user in users.items():
        client.logout()
        if user is not None:
            client.force_login(user)
        for url, app in _admin_urls():
            want = expected.get(role) or (200 if app in MODERATED_APPS or not app else 403)
            status = client.get(url).status_code
            if status != want:
                failures.append(f"{role} GET {url}: {status}, expected {want}")
    assert not failures, failures


def test_a_non_moderator_cannot_act_in_admin(client, world):
    dispute_id = world.ids["dispute"]
    client.force_login(factories.UserFactory(is_staff=True))
    response = client.post("/admin/moderation/dispute/", {
        "action": "overturn", "_selected_action": [dispute_id], "apply": "1", "reason": "I am not a moderator"})
    assert response.status_code == 403
    from moderation.models import Dispute

    assert Dispute.objects.get(pk=dispute_id).state == "open"


# --------------------------------------------------------------------------
# What each role sees inside the answers
# --------------------------------------------------------------------------


def test_labs_see_rater_handles_only(world):
    client = _client(world, "lab", api=True)
    quality = client.get(f"/api/v1/campaigns/{world.ids['campaign']}/quality").content.decode()
    dispute = client.get(f"/api/v1/disputes/{world.ids['lab_dispute']}").json()
    assert dispute["subject"]["rater"] == world.ids["handle"] and dispute["subject"]["judgment"] is None
    for text in (quality, str(dispute)):
        assert "expert-ann-q7" not in text and "ann.q7@example.org" not in text


def test_experts_never_see_another_experts_judgments_or_earnings(world):
    ann = _client(world, "expert", api=True)
    bob = _client(world, "other_expert", api=True)
    bob_ledger = bob.get("/api/v1/me/ledger").json()
    ann_ledger = ann.get("/api/v1/me/ledger").json()
    assert bob_ledger["count"] == 0 and ann_ledger["count"] > 0
    assert bob.get("/api/v1/me/").json()["expert"]["balances"]["bonded"] == 0
    assert bob.get("/api/v1/disputes").json()["count"] == 0
    assert bob.get("/api/v1/me/notifications").json()["count"] == 0
    assert ann.get("/api/v1/me/notifications").json()["count"] == 1
    # Bob's history page lists only his own judgment.
    page = _client(world, "other_expert", api=False).get("/rate/history/").content.decode()
    assert "1 judgment." in page


def test_campaign_list_never_shows_another_labs_campaign(world):
    listed = _client(world, "other_lab", api=True).get("/api/v1/campaigns/").json()
    assert [c["id"] for c in listed["results"]] == [world.ids["other_campaign"]]
    assert Campaign.objects.filter(pk=world.ids["campaign"]).exists()
