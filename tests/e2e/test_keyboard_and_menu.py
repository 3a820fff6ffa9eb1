"""Keyboard-only rating with zero wait between tasks, and the menu every page carries (real Chromium)."""
from __future__ import annotations

import os

import pytest

from annotations.models import Judgment, Notification
from tests import factories

CHROMIUM = "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]
PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory


@pytest.fixture
def browser_context(live_server, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        contexts = []

        def new(width=1400, height=1000):
            context = browser.new_context(viewport={"width": width, "height": height}, base_url=live_server.url)
            context.set_default_timeout(15_000)
            contexts.append(context)
            return context.new_page()

        yield new
        for context in contexts:
            context.close()
        browser.close()


def log_in(page, user):
    page.goto("/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def press(page, *keys):
    for key in keys:
        page.keyboard.press(key)


def submit_and_time(page) -> float:
    """Press Enter; the next task must be on screen with no further key, swapped in without a page load.

    Returns the milliseconds from submit to the next task on screen, as the page measured them.
    """
    lease_id = page.get_attribute("#judgment-form", "action")
    page.evaluate("window.__samePage = true")  # gone if the browser loaded a new page
    page.keyboard.press("Enter")
    page.wait_for_function(
        "(old) => { const f = document.getElementById('judgment-form'); return f && f.getAttribute('action') !== old; }",
        arg=lease_id,
    )
    assert page.evaluate("window.__samePage === true"), "the next task came with a page load"
    return float(page.evaluate("Number(document.body.dataset.nextTaskMs)"))


def test_keyboard_only_two_response_and_three_response_tasks(browser_context):
    expert = factories.ExpertFactory()
    pair = factories.open_campaign(name="Pairs", responses_per_task=2, strength_scale=True,
                                   attribute_axes=["correctness", "safety"], rationale_min_length=10)
    triple = factories.open_campaign(name="Triples", responses_per_task=3, strength_scale=False,
                                     attribute_axes=["correctness"], rationale_min_length=10)
    for i in range(3):
        factories.TaskFactory(campaign=pair, prompt=f"Pair question {i}")
        factories.TaskFactory(campaign=triple, prompt=f"Triple question {i}", responses=["one", "two", "three"])
    page = browser_context()
    log_in(page, expert.user)

    # Two responses with attributes: every key the page lists, the attribute ratings included.
    page.goto(f"/rate/{pair.pk}/")
    shortcuts = page.inner_text("#shortcuts")
    assert "rate the highlighted attribute" in shortcuts and "A or B is better" in shortcuts
    press(page, "Enter")  # start
    page.wait_for_selector("#judgment-form")
    # Enter on an empty form: checked in the page, in its own words, nothing sent.
    press(page, "Enter")
    errors = page.inner_text("#form-errors")
    assert "Which response is better?" in errors and "Response A, correctness: choose 1–5." in errors
    assert "strength" not in errors.lower()
    assert Judgment.objects.count() == 0
    timings = []
    for _ in range(2):
        press(page, "1", "ArrowLeft")  # A much better; the first rating is highlighted next
        press(page, "5", "4", "2", "1")  # A: correctness, safety; B: correctness, safety
        press(page, "r")
        page.keyboard.type("A is right.")
        press(page, "Escape")
        timings.append(submit_and_time(page))
    judgments = list(Judgment.objects.filter(campaign=pair).order_by("submitted_at"))
    assert len(judgments) == 2
    for judgment in judgments:
        a = judgment.display_order[0]
        assert judgment.ranks[a] == 1 and abs(judgment.strength) == 3
        assert judgment.ratings["correctness"][a] == 5 and judgment.ratings["safety"][a] == 4
    assert page.is_visible("#judgment-form")  # the third task, on screen without another key

    # Three responses: rank with 2 then 1 (C follows), rate, tie with T after going back with P.
    page.goto(f"/rate/{triple.pk}/")
    press(page, "Enter")
    page.wait_for_selector("#judgment-form")
    for _ in range(2):
        press(page, "2", "1")  # B > A > C; the ratings take the digits next
        press(page, "3", "4", "5")  # correctness of A, B, C
        press(page, "r")
        page.keyboard.type("B is best here.")
        press(page, "Escape")
        timings.append(submit_and_time(page))
    judgments = list(Judgment.objects.filter(campaign=triple).order_by("submitted_at"))
    assert len(judgments) == 2
    for judgment in judgments:
        slot_ranks = [0, 0, 0]
        for slot, position in enumerate(judgment.display_order):
            slot_ranks[slot] = judgment.ranks[position]
        assert slot_ranks == [2, 1, 3]
        shown = [judgment.ratings["correctness"][p] for p in judgment.display_order]
        assert shown == [3, 4, 5]
    print(f"\nnext task on screen after submit, measured in the page (ms): {', '.join(f'{t:.0f}' for t in timings)}")

    # The last task, then the empty state.
    press(page, "1", "2", "5", "5", "5", "r")
    page.keyboard.type("A is fine too.")
    press(page, "Escape", "Enter")
    page.wait_for_selector("#empty-state")
    assert Judgment.objects.filter(campaign=triple).count() == 3


def test_menu_reaches_every_page_with_unread_count_and_favicon(browser_context):
    expert = factories.ExpertFactory()
    Notification.objects.create(user=expert.user, kind="dispute.resolved", title="Your dispute was upheld")
    page = browser_context()
    missing = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    log_in(page, expert.user)
    assert page.inner_text("#unread-count") == "1"
    for link, heading in [("Wallet", "Wallet"), ("History", ""), ("Rate", ""), ("Expert status", "expert profile"),
                          ("Disputes", "")]:
        page.goto("/notifications/")  # the menu stays on every page, notifications included
        with page.expect_navigation():
            page.click(f"header.top nav >> text={link}")
        assert page.locator("header.top nav").is_visible()
        if heading:
            assert heading.lower() in page.content().lower()
    assert not missing, missing  # no favicon 404 or other missing file
    assert page.locator('link[rel="icon"]').count() == 1

    lab_user = factories.lab_member()
    lab_page = browser_context()
    log_in(lab_page, lab_user)
    nav = lab_page.inner_text("header.top nav")
    assert "Campaigns" in nav and "Disputes" in nav and "Wallet" not in nav

    # A phone: the whole header fits and Log out is reachable.
    phone = browser_context(width=390, height=844)
    log_in(phone, expert.user)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    box = phone.locator("header.top button", has_text="Log out").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390
    with phone.expect_navigation():
        phone.click("header.top button:has-text('Log out')")
    assert "/accounts/login/" in phone.url
