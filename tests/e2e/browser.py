"""What the browser tests share: launching headless Chromium against the live server, logging in, seeding pages."""
from __future__ import annotations

import contextlib
import os

import pytest

from tests import factories

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

requires_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                       reason=f"{CHROMIUM} is missing (apt-get install chromium)")


@contextlib.contextmanager
def chromium(base_url: str):
    """Yield ``new(width, height) -> page``; every context and the browser close on exit."""
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        contexts = []

        def new(width: int = 1400, height: int = 1000):
            context = browser.new_context(viewport={"width": width, "height": height}, base_url=base_url)
            context.set_default_timeout(15_000)
            contexts.append(context)
            return context.new_page()

        try:
            yield new
        finally:
            for context in contexts:
                context.close()
            browser.close()


def log_in(page, user) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/accounts/login/" not in page.url, f"{user.username} could not log in"


def seeded_lab_dispute():
    """An open lab dispute of one rater's judgment: (dispute, rater expert, lab member who opened it)."""
    from moderation import services as disputes
    from annotations.handles import rater_handle

    campaign = factories.open_campaign(name="Clinical prescribing safety")
    task = factories.TaskFactory(campaign=campaign, prompt="Start metformin at eGFR 28?")
    rater, other = factories.ExpertFactory(), factories.ExpertFactory()
    factories.rated_judgment(task=task, expert=rater, ranks=[2, 1])
    factories.rated_judgment(task=task, expert=other, ranks=[1, 2])
    lab_user = factories.lab_member(campaign.lab)
    dispute, _ = disputes.dispute_open_lab(
        user=lab_user, campaign_id=campaign.pk, task_external_id=task.external_id,
        rater=rater_handle(campaign.pk, rater.pk), statement="This rater clicked through without reading at all.")
    return dispute, rater, lab_user
