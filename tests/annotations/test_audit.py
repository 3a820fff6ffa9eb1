"""The audit trail: logins, failed logins, admin actions, ledger postings, export downloads."""
from __future__ import annotations

import pytest
from django.db import DatabaseError, transaction

from annotations.audit import audit_record, client_ip
from annotations.models import AuditEvent, Expert
from exports.models import Export
from rewards import ledger
from rewards.models import Account, LedgerTransaction
from tests import factories

pytestmark = pytest.mark.django_db
UA = "Mozilla/5.0 (audit test)"


@pytest.fixture
def moderator():
    return factories.rewards_moderator()


def test_logins_and_failed_logins_are_recorded_without_passwords(client):
    user = factories.UserFactory(username="carol")
    client.post("/accounts/login/", {"username": "carol", "password": "wrong-password-123"},
                HTTP_USER_AGENT=UA, REMOTE_ADDR="203.0.113.7")
    client.post("/accounts/login/", {"username": "carol", "password": "correct-horse-battery"},
                HTTP_USER_AGENT=UA, REMOTE_ADDR="203.0.113.7")

    failed = AuditEvent.objects.get(action="login.failed")
    ok = AuditEvent.objects.get(action="login")
    assert (failed.actor, failed.actor_label, failed.ip, failed.user_agent) == (None, "carol", "203.0.113.7", UA)
    assert (ok.actor, ok.object_id, ok.ip) == (user, str(user.pk), "203.0.113.7")
    assert "wrong-password" not in str(failed.details) and "correct-horse" not in str(ok.details)


def test_every_ledger_posting_is_recorded_once():
    expert = factories.ExpertFactory()
    entries = [(ledger.external_account(), -500), (ledger.expert_account(expert, Account.Kind.AVAILABLE), 500)]
    posted = ledger.ledger_post(key="audit:deposit:1", kind="topup", entries=entries, memo="Deposit")
    ledger.ledger_post(key="audit:deposit:1", kind="topup", entries=entries, memo="Deposit")  # replay moves nothing

    events = AuditEvent.objects.filter(action="ledger.post", object_id=str(posted.transaction_id))
    assert events.count() == 1
    assert events.get().details["key"] == "audit:deposit:1"
    assert AuditEvent.objects.filter(action="ledger.post").count() == LedgerTransaction.objects.count()


def test_a_ledger_posting_made_in_a_request_records_who_and_where(lab_client, lab, lab_user, campaign):
    factories.lab_deposit(lab, 1000)
    response = lab_client.post(f"/api/v1/campaigns/{campaign.pk}/fund", {"amount": 400}, format="json",
                               HTTP_USER_AGENT=UA, REMOTE_ADDR="198.51.100.4")
    assert response.status_code == 201
    event = AuditEvent.objects.get(action="ledger.post", object_id=str(response.data["transaction"]))
    assert (event.actor, event.ip, event.user_agent) == (lab_user, "198.51.100.4", UA)
    assert event.details["kind"] == "fund"


def test_admin_actions_are_recorded_with_the_selection(client, moderator):
    applicant = factories.ExpertFactory(state=Expert.State.APPLIED)
    client.force_login(moderator)
    client.post("/admin/annotations/judgment/", {"action": "void", "_selected_action": ["999999"], "apply": "1",
                                                  "reason": "identical rationale on forty tasks"},
                HTTP_USER_AGENT=UA, REMOTE_ADDR="192.0.2.9")
    event = AuditEvent.objects.get(action="admin.void")
    assert (event.actor, event.ip, event.object_type) == (moderator, "192.0.2.9", "annotations.judgment")
    assert event.details["selected"] == ["999999"]

    admin = factories.UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    client.post("/admin/annotations/expert/", {"action": "approve", "_selected_action": [applicant.pk]})
    approve = AuditEvent.objects.get(action="admin.approve")
    assert approve.actor == admin and approve.details["selected"] == [str(applicant.pk)]
    applicant.refresh_from_db()
    assert applicant.state == Expert.State.QUALIFYING


def test_admin_form_saves_are_recorded_and_secrets_hidden(client):
    admin = factories.UserFactory(is_staff=True, is_superuser=True)
    target = factories.UserFactory()
    client.force_login(admin)
    client.post(f"/admin/auth/user/{target.pk}/password/",
                {"password1": "N3w-Secret-pass!", "password2": "N3w-Secret-pass!", "usable_password": "true"})
    event = AuditEvent.objects.filter(object_type="auth.user", object_id=str(target.pk)).latest("id")
    assert "N3w-Secret" not in str(event.details)
    assert event.details["fields"]["password1"] == "(hidden)"


def test_export_downloads_are_recorded(lab_client, lab_user, campaign, settings, tmp_path):
    settings.DATADAO_EXPORT_ROOT = str(tmp_path)
    (tmp_path / "train.jsonl").write_text('{"prompt": "p"}\n')
    export = Export.objects.create(campaign=campaign, format="trl_preference", state="done",
                                   train_file="train.jsonl", sha256_train="0" * 64)
    response = lab_client.get(f"/api/v1/exports/{export.pk}/download", REMOTE_ADDR="198.51.100.8")
    assert response.status_code == 200
    b"".join(response.streaming_content)
    event = AuditEvent.objects.get(action="export.download")
    assert (event.actor, event.object_type, event.object_id, event.ip) == (
        lab_user, "annotations.export", str(export.pk), "198.51.100.8")
    # A refused download (another lab) is not a download.
    stranger = factories.lab_member()
    from rest_framework.test import APIClient

    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {factories.api_token(stranger)}")
    assert other.get(f"/api/v1/exports/{export.pk}/download").status_code == 404
    assert AuditEvent.objects.filter(action="export.download").count() == 1


def test_audit_rows_are_append_only():
    event = audit_record(action="test.event", details={"n": 1})
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="edited")
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"


def test_audit_admin_is_searchable_and_read_only(client, moderator):
    audit_record(action="login.failed", actor_label="mallory", details={"username": "mallory"})
    audit_record(action="login", actor_label="alice")
    client.force_login(moderator)
    found = client.get("/admin/annotations/auditevent/?q=mallory").content.decode()
    assert "mallory" in found and "alice" not in found
    event = AuditEvent.objects.get(actor_label="mallory")
    assert client.get(f"/admin/annotations/auditevent/{event.pk}/change/").status_code == 200
    assert client.get("/admin/annotations/auditevent/add/").status_code == 403
    assert client.post(f"/admin/annotations/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    # Ledger rows too: read-only for moderators.
    assert client.get("/admin/rewards/ledgertransaction/add/").status_code == 403


def test_client_ip_trusts_only_the_configured_proxies(rf, settings):
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.50")
    settings.DATADAO_TRUSTED_PROXIES = 0
    assert client_ip(request) == "10.0.0.2"
    settings.DATADAO_TRUSTED_PROXIES = 1
    assert client_ip(request) == "203.0.113.50"  # the spoofed left-most entry is ignored
