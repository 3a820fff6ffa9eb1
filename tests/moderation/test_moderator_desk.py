"""The moderator's desk in admin: work queues on the index, readable experts and disputes, one audit row a decision."""
from __future__ import annotations

import re

import pytest
from django.core.cache import cache

from annotations.handles import rater_handle
from annotations.models import AuditEvent, Expert, Judgment, Task
from moderation import services as disputes
from moderation.models import Dispute
from rewards import services
from rewards.models import EpochReward
from tests import factories

pytestmark = pytest.mark.django_db
TOKEN = 1_000_000
STATEMENT = "I followed the guidelines exactly; please look again at my rationale."
REASON = "Checked the evidence against the guidelines."


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()


@pytest.fixture
def moderator():
    return factories.rewards_moderator()


def slash_dispute(key: str = "test:desk") -> Dispute:
    expert = factories.ExpertFactory()
    factories.expert_deposit(expert, 10 * TOKEN)
    services.stake_bond(expert=expert, amount=10 * TOKEN)
    slash = services.stake_slash(expert=expert, fraction=0.1, key=key, reason="gold")
    dispute, _ = disputes.dispute_open_expert(expert=expert, user=expert.user, kind="slash", slash_id=slash.pk,
                                              statement=STATEMENT)
    return dispute


def lab_dispute() -> tuple[Dispute, Judgment]:
    campaign = factories.CampaignFactory()
    task = factories.TaskFactory(campaign=campaign)
    rater, other = factories.ExpertFactory(), factories.ExpertFactory()
    judgment = factories.rated_judgment(task=task, expert=rater, ranks=[2, 1])
    factories.rated_judgment(task=task, expert=other, ranks=[1, 2])
    dispute, _ = disputes.dispute_open_lab(
        user=factories.lab_member(campaign.lab), campaign_id=campaign.pk, task_external_id=task.external_id,
        rater=rater_handle(campaign.pk, rater.pk), statement="This rater clicked through without reading at all.")
    return dispute, judgment


def queue_count(html: str, title: str) -> tuple[int, str]:
    match = re.search(rf'<a href="([^"]*)">{re.escape(title)}</a></th>\s*<td[^>]*data-queue-count="(\d+)"', html)
    assert match, f"no work queue {title!r} on the admin index"
    return int(match.group(2)), match.group(1)


# --------------------------------------------------------------------------
# The admin index: work queues
# --------------------------------------------------------------------------


def test_the_index_counts_each_work_queue_and_links_to_it(client, moderator, django_assert_max_num_queries):
    factories.ExpertFactory(state=Expert.State.APPLIED)
    factories.ExpertFactory(state=Expert.State.APPLIED)
    factories.ExpertFactory()  # vetted: not waiting
    open_dispute = slash_dispute("test:open")
    escalated = slash_dispute("test:escalated")
    disputes.dispute_escalate(dispute=escalated, moderator=moderator, note="needs a second opinion")
    factories.TaskFactory(state=Task.State.REVIEW)
    EpochReward.objects.create(epoch=factories.EpochFactory(), expert=factories.ExpertFactory(), judgments=10,
                               agreement=0.5, quality=0.5, stake=0, weight=1, amount=5 * TOKEN,
                               hold_state=EpochReward.HoldState.HELD, hold_reasons=["speed"])
    client.force_login(moderator)
    with django_assert_max_num_queries(12):
        html = client.get("/admin/").content.decode()
    assert "Work queues" in html
    assert queue_count(html, "Experts awaiting vetting") == (2, "/admin/annotations/expert/?state__exact=applied")
    assert queue_count(html, "Open disputes") == (1, "/admin/moderation/dispute/?state__exact=open")
    assert queue_count(html, "Escalated disputes") == (1, "/admin/moderation/dispute/?state__exact=escalated")
    assert queue_count(html, "Payouts on hold") == (1, "/admin/rewards/heldpayout/")
    assert queue_count(html, "Tasks awaiting review") == (1, "/admin/annotations/taskawaitingreview/")
    # The links open the filtered queues.
    listed = client.get("/admin/moderation/dispute/?state__exact=open").content.decode()
    assert f"/admin/moderation/dispute/{open_dispute.pk}/change/" in listed
    assert f"/admin/moderation/dispute/{escalated.pk}/change/" not in listed
    assert client.get("/admin/annotations/expert/?state__exact=applied").status_code == 200


# --------------------------------------------------------------------------
# Experts
# --------------------------------------------------------------------------


def test_the_expert_list_shows_domain_names_and_distinct_filters(client, moderator):
    lawyer = factories.ExpertFactory(domains=["law", "medicine"], state=Expert.State.APPLIED)
    doctor = factories.ExpertFactory()  # vetted in medicine
    client.force_login(moderator)
    html = client.get("/admin/annotations/expert/").content.decode()
    assert "Law, Medicine" in html and "[&quot;law&quot;" not in html and '["law"' not in html
    titles = re.findall(r"<summary>\s*By ([^<]+?)\s*</summary>|<h3>\s*By ([^<]+?)\s*</h3>", html)
    titles = [a or b for a, b in titles]
    assert len(titles) == len(set(titles)) >= 3, titles
    assert {"account status", "domain applied for", "domain vetting status"} <= set(titles)

    def listed(query: str) -> set[int]:
        page = client.get(f"/admin/annotations/expert/{query}").content.decode()
        return {pk for pk in (lawyer.pk, doctor.pk) if f"/admin/annotations/expert/{pk}/change/" in page}

    assert listed("?domain=law") == {lawyer.pk}
    assert listed("?domain=medicine") == {lawyer.pk, doctor.pk}
    assert listed("?vetting=vetted&domain=medicine") == {doctor.pk}
    assert listed("?vetting=vetted&domain=law") == set()
    assert listed(f"?q={lawyer.user.email}") == {lawyer.pk}


def test_an_experts_domains_are_edited_as_checkboxes(client):
    expert = factories.ExpertFactory(domains=["law"], state=Expert.State.APPLIED)
    client.force_login(factories.UserFactory(is_staff=True, is_superuser=True))
    url = f"/admin/annotations/expert/{expert.pk}/change/"
    html = client.get(url).content.decode()
    assert 'type="checkbox" name="domains" value="law"' in html and '["law"]' not in html
    response = client.post(url, {
        "user": expert.user_id, "domains": ["law", "finance"], "credentials": "JD, 12 years in tax law",
        "wallet_address": "", "reputation": "0.5", "review_note": "",
        "domain_vettings-TOTAL_FORMS": "0", "domain_vettings-INITIAL_FORMS": "0"})
    assert response.status_code == 302, response.content.decode()[:2000]
    expert.refresh_from_db()
    assert expert.domains == ["law", "finance"]


# --------------------------------------------------------------------------
# A dispute's page: readable evidence, the decision on the page
# --------------------------------------------------------------------------


def test_a_lab_dispute_page_shows_readable_evidence_and_buttons_worded_for_a_lab(client, moderator):
    dispute, judgment = lab_dispute()
    client.force_login(moderator)
    html = client.get(f"/admin/moderation/dispute/{dispute.pk}/change/").content.decode()
    handle = rater_handle(dispute.campaign_id, judgment.expert_id)
    assert f"Judgment by {handle}" in html
    assert "Other judgments on this task, by handle" in html and "Responses" in html
    assert "<details" in html and "Raw evidence (JSON)" in html
    assert '"ranks": [' not in html.split("Raw evidence")[0]  # the JSON dump is only behind the fold
    assert 'value="uphold"' in html and "Reject the lab&#x27;s complaint: the judgment stands" in html
    assert 'value="overturn"' in html and "Accept: void the judgment and claw back its reward" in html
    assert 'value="escalate"' in html and "Also slash the expert" in html
    assert "the disputed decision stands" not in html


def test_resolving_on_the_dispute_page_resolves_once_with_one_audit_row(client, moderator):
    dispute = slash_dispute()
    client.force_login(moderator)
    url = f"/admin/moderation/dispute/{dispute.pk}/change/"
    html = client.get(url).content.decode()
    assert "Reject: the slash stands" in html and "Overturn: give the slash back" in html

    too_short = client.post(url, {"action": "overturn", "reason": "no"})
    assert too_short.status_code == 200 and "Ensure this value has at least" in too_short.content.decode()
    dispute.refresh_from_db()
    assert dispute.state == "open"

    done = client.post(url, {"action": "overturn", "reason": REASON})
    assert done.status_code == 302 and done["Location"] == url
    again = client.post(url, {"action": "overturn", "reason": REASON}, follow=True)  # a double submit
    assert "decided so already" in again.content.decode()
    dispute.refresh_from_db()
    assert (dispute.state, dispute.resolution, dispute.resolved_by) == ("resolved", "overturned", moderator)
    assert AuditEvent.objects.filter(action="admin.overturn").count() == 1
    assert AuditEvent.objects.filter(action="dispute.resolve", object_id=str(dispute.pk)).count() == 1
    page = client.get(url).content.decode()
    assert "Overturned: the slash was given back" in page and 'value="uphold"' not in page


def test_escalating_on_the_page_leaves_the_decision_to_a_senior(client, moderator):
    dispute = slash_dispute()
    client.force_login(moderator)
    url = f"/admin/moderation/dispute/{dispute.pk}/change/"
    client.post(url, {"action": "escalate", "reason": "needs a second opinion"})
    dispute.refresh_from_db()
    assert dispute.state == "escalated"
    html = client.get(url).content.decode()
    assert "a senior moderator decides" in html and 'value="overturn"' not in html
    refused = client.post(url, {"action": "overturn", "reason": REASON}, follow=True)
    assert "decided by a senior moderator" in refused.content.decode()
    dispute.refresh_from_db()
    assert dispute.state == "escalated"


def test_resolving_through_the_changelist_action_writes_one_admin_row(client, moderator):
    dispute = slash_dispute()
    client.force_login(moderator)
    form = client.post("/admin/moderation/dispute/", {"action": "uphold", "_selected_action": [dispute.pk]})
    assert form.status_code == 200 and "Reject: the slash stands" in form.content.decode()
    for _ in range(2):  # the confirming page submitted twice
        client.post("/admin/moderation/dispute/", {"action": "uphold", "_selected_action": [dispute.pk],
                                                    "apply": "1", "reason": REASON})
    dispute.refresh_from_db()
    assert dispute.resolution == "upheld"
    assert AuditEvent.objects.filter(action="admin.uphold").count() == 1
    assert AuditEvent.objects.filter(action="dispute.resolve", object_id=str(dispute.pk)).count() == 1


def test_a_non_moderator_cannot_decide_on_the_dispute_page(client):
    dispute = slash_dispute()
    client.force_login(factories.UserFactory(is_staff=True))
    response = client.post(f"/admin/moderation/dispute/{dispute.pk}/change/",
                           {"action": "overturn", "reason": REASON})
    assert response.status_code == 403
    dispute.refresh_from_db()
    assert dispute.state == "open"
