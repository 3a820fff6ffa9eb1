"""Write the screenshots in this folder: the rating page, the wallet, the moderator desk and a lab's quality page.

Run from the repository root (it needs the test database, like the browser tests, and /usr/bin/chromium):

    DATABASE_URL=postgres://root@127.0.0.1:5432/root .venv/bin/python docs/screenshots/make_screenshots.py

It runs itself under pytest so that pytest-django gives it a throwaway database and a live server;
the pages are seeded with the test factories. Each PNG is 1280x800 (the viewport, not the full page).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
VIEWPORT = (1280, 800)
TOKEN = 1_000_000


@pytest.mark.django_db(transaction=True)
def test_make_screenshots(live_server, monkeypatch):
    from moderation import services as disputes
    from annotations.models import Expert
    from annotations.quality import services as quality_services
    from rewards import services
    from tests import factories
    from tests.annotations.quality_crowds import planted_campaign
    from tests.e2e.browser import chromium, log_in, seeded_lab_dispute
    from tests.e2e.test_rating_flow import PROMPTS, RESPONSES

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # The rating page: a real clinical task, ranked half-way.
    expert = factories.ExpertFactory(user__username="dr.ines.okafor")
    rating = factories.open_campaign(
        name="Clinical prescribing safety", responses_per_task=3, strength_scale=False,
        attribute_axes=["correctness"], rationale_min_length=10,
        guidelines="Prefer the response a careful clinician would sign:\n\n- correct dose\n- contraindications checked")
    for prompt, texts in zip(PROMPTS, RESPONSES):
        factories.TaskFactory(campaign=rating, prompt=prompt, responses=texts)
    # The wallet: tokens deposited, some staked, one slash under dispute.
    factories.expert_deposit(expert, 250 * TOKEN)
    services.stake_bond(expert=expert, amount=100 * TOKEN)
    slash = services.stake_slash(expert=expert, fraction=0.05, key="screenshots:gold", reason="gold")
    disputes.dispute_open_expert(expert=expert, user=expert.user, kind="slash", slash_id=slash.pk,
                                 statement="I followed the guidelines exactly; please look again at my rationale.")
    # The moderator's desk: experts to vet and disputes waiting.
    for _ in range(3):
        factories.ExpertFactory(state=Expert.State.APPLIED)
    seeded_lab_dispute()
    moderator = factories.rewards_moderator(username="moderator")
    # A lab's quality page over a planted crowd.
    lab = factories.LabFactory(name="Frontier Lab")
    quality, _, _ = planted_campaign(lab=lab, name="Cardiology pairs")
    quality_services.campaign_quality_compute(campaign_id=quality.pk)
    lab_user = factories.lab_member(lab, username="lab.lead")

    width, height = VIEWPORT
    with chromium(live_server.url) as new:
        page = new(width, height)
        log_in(page, expert.user)
        page.goto(f"/rate/{rating.pk}/")
        page.keyboard.press("Enter")
        page.wait_for_selector("#judgment-form")
        for key in ("1", "2", "4", "3", "2"):
            page.keyboard.press(key)
        page.keyboard.press("r")
        page.keyboard.type("A checks renal function before prescribing; B ignores eGFR.")
        page.keyboard.press("Escape")
        shoot(page, "rating-page.png")
        page.goto("/wallet/")
        shoot(page, "wallet.png")

        page = new(width, height)
        log_in(page, moderator)
        page.goto("/admin/")
        shoot(page, "moderator-desk.png")

        page = new(width, height)
        log_in(page, lab_user)
        page.goto(f"/labs/campaigns/{quality.pk}/quality")
        shoot(page, "lab-quality.png")


def shoot(page, name: str) -> None:
    path = HERE / name
    page.screenshot(path=str(path))  # the viewport only: a fixed size keeps the files small and comparable
    size = path.stat().st_size
    print(f"{path.relative_to(HERE.parent.parent)}: {size // 1024} KB")
    assert size < 200 * 1024, f"{name} is {size // 1024} KB; keep screenshots under 200 KB"


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-s", "-p", "no:cacheprovider", "--rootdir", str(HERE.parent.parent)]))
