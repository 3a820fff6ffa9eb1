"""An expert rates in real headless Chromium: log in, rate three tasks with the keyboard, skip one, see the history."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from annotations.models import Assignment, Judgment
from tests import factories

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "rating-page.png"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory
PROMPTS = [
    [
        {"role": "system", "content": "You are a careful clinical assistant."},
        {"role": "user", "content": "A 58-year-old with eGFR 28 mL/min has new type 2 diabetes. Start metformin?"},
    ],
    "Which antibiotic for acute otitis media in a 4-year-old (16 kg) with no allergy history?",
    "Write a Python function that returns the n-th Fibonacci number efficiently.",
    "Is ibuprofen a good choice for knee pain in a 72-year-old taking warfarin?",
]
RESPONSES = [
    ["Do **not** start metformin: below eGFR 30 it is contraindicated (lactic acidosis risk). Consider a DPP-4 inhibitor.",
     "Start metformin 500 mg twice daily and titrate up over four weeks.",
     "Metformin is fine at any kidney function.\n\n<script>alert('x')</script>"],
    ["High-dose amoxicillin, 80-90 mg/kg/day in two doses, after checking for penicillin allergy.",
     "Amoxicillin 500 mg three times daily regardless of weight.",
     "Watchful waiting only; antibiotics never help."],
    ["```python\ndef fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n```",
     "```python\ndef fib(n):\n    return fib(n - 1) + fib(n - 2) if n > 1 else n\n```\nSimple recursion.",
     "Use `math.fib(n)`."],
    ["Avoid NSAIDs with warfarin (bleeding risk); prefer paracetamol or a topical NSAID.",
     "Ibuprofen 400 mg three times daily with food.",
     "Any painkiller is fine."],
]


@pytest.fixture
def page(live_server, monkeypatch):
    # Playwright's sync API keeps an event loop in this thread; the test's
    # own ORM calls are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=live_server.url)
        context.set_default_timeout(15_000)
        yield context.new_page()
        context.close()
        browser.close()


def slots_to_positions(slot_ranks: list[int], display_order: list[int]) -> list[int]:
    ranks = [0] * len(display_order)
    for slot, position in enumerate(display_order):
        ranks[position] = slot_ranks[slot]
    return ranks


def test_expert_rates_three_tasks_with_the_keyboard_skips_one_and_sees_history(page):
    expert = factories.ExpertFactory()
    campaign = factories.open_campaign(
        name="Clinical prescribing safety", responses_per_task=3, strength_scale=False,
        guidelines="Prefer the response a careful clinician would sign:\n\n- correct dose\n- contraindications checked",
    )
    for prompt, texts in zip(PROMPTS, RESPONSES):
        factories.TaskFactory(campaign=campaign, prompt=prompt, responses=texts)

    page.goto("/accounts/login/")
    page.fill("#id_username", expert.user.username)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/accounts/login/" not in page.url
    page.goto(f"/rate/{campaign.pk}/")

    def next_task():
        page.keyboard.press("Enter")  # the Next button
        page.wait_for_selector("#judgment-form")

    def submit():
        """Enter submits; the next task (or the empty state) replaces this one in place."""
        lease = page.get_attribute("#judgment-form", "action")
        page.keyboard.press("Enter")
        page.wait_for_function(
            "(old) => { const f = document.getElementById('judgment-form');"
            " return document.getElementById('empty-state') || (f && f.getAttribute('action') !== old); }",
            arg=lease,
        )
        page.wait_for_selector("text=Judgment saved.")

    def rationale_and_submit(text: str):
        page.keyboard.press("r")
        page.keyboard.type(text)
        page.keyboard.press("Escape")
        submit()

    # Task 1: press 2 then 1; the last slot completes the ranking: B > A > C.
    next_task()
    page.keyboard.press("2")
    page.keyboard.press("1")
    assert page.inner_text("#ranking-list").split() == ["B", "A", "C"]
    page.keyboard.press("r")
    page.keyboard.type("B checks renal function before prescribing.")
    page.keyboard.press("Escape")
    assert page.locator("#lease-timer").inner_text().startswith(("19:", "20:"))
    assert page.locator("script", has_text="alert('x')").count() == 0  # task text is inert
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    submit()

    # Task 2: C, A, then B; move B up past A, then tie it with C: C = B > A.
    next_task()
    for key in ("3", "1", "2", "ArrowUp", "t"):
        page.keyboard.press(key)
    assert page.inner_text("#ranking-list").split() == ["C", "=", "B", "A"]
    rationale_and_submit("C and B are equally safe; A ignores weight.")

    # Task 3: a false start cleared with Backspace, then A > B > C.
    next_task()
    page.keyboard.press("3")
    page.keyboard.press("Backspace")
    page.keyboard.press("1")
    page.keyboard.press("2")
    rationale_and_submit("A is iterative and linear; B is exponential.")

    # Task 4: skip with a reason.
    next_task()
    page.keyboard.press("s")
    page.keyboard.type("Outside my expertise")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=will not be offered to you again")
    assert page.inner_text("#rated-count") == "3"

    page.goto("/rate/history/")
    rows = page.locator("#history tbody tr")
    assert rows.count() == 3
    history = page.inner_text("#history")
    assert "A > B > C" in history and "B = C > A" in history and "B > A > C" in history
    assert "model-" not in page.content()

    judgments = list(Judgment.objects.filter(expert=expert).select_related("assignment").order_by("submitted_at"))
    expected_slot_ranks = [[2, 1, 3], [3, 1, 1], [1, 2, 3]]
    assert [j.ranks for j in judgments] == [
        slots_to_positions(ranks, j.display_order) for ranks, j in zip(expected_slot_ranks, judgments)
    ]
    skipped = Assignment.objects.get(expert=expert, state=Assignment.State.SKIPPED)
    assert skipped.skip_reason == "Outside my expertise"
    assert SCREENSHOT.stat().st_size > 10_000
