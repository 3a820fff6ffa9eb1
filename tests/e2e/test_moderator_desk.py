"""A moderator works a dispute from the admin index to its outcome, in real Chromium."""
from __future__ import annotations

import pytest

from annotations.models import AuditEvent, Notification
from moderation.models import Dispute
from tests import factories
from tests.e2e.browser import PASSWORD, requires_chromium, seeded_lab_dispute

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [pytest.mark.e2e, requires_chromium, pytest.mark.django_db(transaction=True)]
REASON = "Two gold misses and a 4-second read: the judgment cannot stand."


def test_moderator_opens_the_queue_and_resolves_a_lab_dispute_with_a_reason(new_page):
    dispute, rater, lab_user = seeded_lab_dispute()
    moderator = factories.rewards_moderator()
    page = new_page()
    page.goto("/admin/")
    page.fill("#id_username", moderator.username)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")

    # The work queues panel counts the open dispute and links to the filtered list.
    queue = page.locator("#work-queues tr", has_text="Open disputes")
    assert queue.locator("[data-queue-count]").inner_text() == "1"
    with page.expect_navigation():
        queue.locator("a").click()
    assert "state__exact=open" in page.url
    with page.expect_navigation():
        page.click(f"#result_list a[href*='/moderation/dispute/{dispute.pk}/change/']")

    # The dispute page: a decision without a reason is stopped by the browser, then one with a reason lands.
    accept = page.locator("#dispute-decision button[value=overturn]")
    assert "Accept: void the judgment" in accept.inner_text()
    accept.click()
    assert page.eval_on_selector("#id_reason", "e => e.validity.valueMissing")
    assert f"/dispute/{dispute.pk}/change/" in page.url
    dispute.refresh_from_db()
    assert dispute.state == Dispute.State.OPEN
    page.fill("#id_reason", REASON)
    with page.expect_navigation():
        page.click("#dispute-decision button[value=overturn]")
    assert page.locator("#dispute-decision").count() == 0  # decided: no buttons left
    assert "Lab's complaint accepted" in page.locator("#content").inner_text()

    dispute.refresh_from_db()
    assert (dispute.state, dispute.resolution, dispute.resolved_by) == ("resolved", "overturned", moderator)
    assert dispute.resolution_reason == REASON
    decisions = AuditEvent.objects.filter(action__startswith="admin.")
    assert [e.action for e in decisions] == ["admin.overturn"]
    assert decisions[0].actor == moderator
    # Both parties hear of it: the lab member who raised it and the rater whose judgment it was.
    told = Notification.objects.filter(subject=f"dispute:{dispute.pk}", kind="dispute.resolved")
    assert sorted(n.user_id for n in told) == sorted([lab_user.pk, rater.user_id])
    assert all(n.read_at is None for n in told)
