"""axe-core finds no serious or critical accessibility problem on each role's main pages (real Chromium)."""
from __future__ import annotations

import pytest

from annotations.models import Notification
from annotations.quality import services as quality_services
from tests import factories
from tests.annotations.quality_crowds import planted_campaign
from tests.e2e.browser import log_in, requires_chromium, seeded_lab_dispute

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
axe_sync = pytest.importorskip("axe_playwright_python.sync_playwright",
                               reason="axe-playwright-python is not installed (requirements.txt)")

pytestmark = [pytest.mark.e2e, requires_chromium, pytest.mark.django_db(transaction=True)]
BLOCKING = {"serious", "critical"}


def blocking_violations(page) -> list[str]:
    """Each serious or critical axe violation on the page, as 'rule (impact): target, target'."""
    results = axe_sync.Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at " + ", ".join(" ".join(n["target"]) for n in v["nodes"][:5])
        for v in results.response["violations"] if v["impact"] in BLOCKING
    ]


def check(page, paths: list[str]) -> dict[str, list[str]]:
    found = {}
    for path in paths:
        response = page.goto(path)
        assert response is not None and response.status == 200, f"{path} answered {response and response.status}"
        if problems := blocking_violations(page):
            found[path] = problems
    return found


def test_expert_pages_have_no_serious_violations(new_page):
    dispute, rater, _ = seeded_lab_dispute()
    Notification.objects.create(user=rater.user, kind="dispute.resolved", title="Your dispute was upheld",
                                body="The slash was given back.", url="/disputes/")
    campaign = factories.open_campaign(name="Pairs", responses_per_task=2, strength_scale=True,
                                       attribute_axes=["correctness", "safety"], rationale_min_length=10)
    factories.TaskFactory(campaign=campaign, prompt="Is ibuprofen a good choice with warfarin?")
    page = new_page()
    log_in(page, rater.user)
    found = check(page, ["/", "/rate/", f"/rate/{campaign.pk}/", "/rate/history/", "/wallet/", "/notifications/",
                         "/disputes/", "/account/tokens/", "/expert/"])
    # The rating page with a task on screen: the form, its ratings and the rationale.
    page.goto(f"/rate/{campaign.pk}/")
    page.keyboard.press("Enter")
    page.wait_for_selector("#judgment-form")
    if problems := blocking_violations(page):
        found[f"/rate/{campaign.pk}/ (a task on screen)"] = problems
    assert not found, "\n".join(f"{path}:\n  " + "\n  ".join(p) for path, p in found.items())


def test_lab_pages_have_no_serious_violations(new_page):
    dispute, _, lab_user = seeded_lab_dispute()
    rated, _, _ = planted_campaign(lab=dispute.campaign.lab, name="Cardiology pairs")
    quality_services.campaign_quality_compute(campaign_id=rated.pk)  # the quality page with its charts and flags
    page = new_page()
    log_in(page, lab_user)
    found = check(page, ["/labs/campaigns/", f"/labs/campaigns/{rated.pk}/quality",
                         f"/labs/campaigns/{dispute.campaign_id}/quality", "/disputes/", "/account/tokens/"])
    assert not found, "\n".join(f"{path}:\n  " + "\n  ".join(p) for path, p in found.items())


def test_moderator_pages_have_no_serious_violations(new_page):
    dispute, _, _ = seeded_lab_dispute()
    page = new_page()
    log_in(page, factories.rewards_moderator())
    found = check(page, ["/admin/", "/admin/moderation/dispute/?state__exact=open",
                         f"/admin/moderation/dispute/{dispute.pk}/change/"])
    assert not found, "\n".join(f"{path}:\n  " + "\n  ".join(p) for path, p in found.items())


def test_the_check_reports_a_field_without_a_label(new_page):
    page = new_page()
    page.goto("/accounts/login/")
    assert blocking_violations(page) == []
    page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<input id=\"unlabelled\">')")
    assert any(problem.startswith("label (critical)") and "#unlabelled" in problem
               for problem in blocking_violations(page))
