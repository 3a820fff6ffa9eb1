"""The lab console end to end in real Chromium: create, upload (a bad line, then fixed), fund, open, export,
download; and no serious accessibility problem on its pages."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from annotations.models import Campaign, Task
from rewards import selectors as reward_selectors
from tests import factories
from tests.e2e.browser import log_in, requires_chromium

pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

pytestmark = [pytest.mark.e2e, requires_chromium, pytest.mark.django_db(transaction=True)]
TOKEN = 1_000_000


def _rows(bad_line: int | None = None) -> bytes:
    rows = []
    for n in range(1, 5):
        responses = [{"model": "small", "text": f"Take {n} mg once daily."},
                     {"model": "large", "text": f"Take {n * 10} mg every hour."}]
        rows.append({"external_id": f"dose-{n}", "prompt": f"Dose question {n}: how much, how often?",
                     "responses": responses[:1] if n == bad_line else responses})
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def _upload(page, content: bytes) -> None:
    """Upload in place: the page sends the file itself, shows what is sent, then swaps in the server's answer."""
    page.set_input_files("#id_file", files=[{"name": "tasks.jsonl", "mimeType": "application/x-ndjson",
                                             "buffer": content}])
    url = page.url
    page.click("#upload-form button[type=submit]")
    deadline = time.monotonic() + 30
    while (upload := page.evaluate("window.datadaoUpload")) is None or upload["state"] != "done":
        assert time.monotonic() < deadline, upload  # (the page's CSP forbids wait_for_function's eval)
        page.wait_for_timeout(50)
    assert upload["state"] == "done" and upload["loaded"] == upload["total"] >= len(content), upload
    assert page.url == url  # no page load
    assert page.evaluate("document.activeElement.id") in ("import-result", "import-errors")


def _serious_problems(page) -> list[str]:
    try:
        from tests.e2e.test_accessibility import blocking_violations
    except pytest.skip.Exception:  # axe-playwright-python missing: the flow is still checked
        return []
    return blocking_violations(page)


def _seed_consensus(campaign: Campaign) -> None:
    """Two experts agree on every task, and the quality job's consensus is stored (as the export tests do)."""
    raters = [factories.ExpertFactory(), factories.ExpertFactory()]
    for task in Task.objects.filter(campaign=campaign):
        for rater in raters:
            factories.rated_judgment(task=task, expert=rater, ranks=[1, 2])
        factories.consensus_for(task, [1, 2], margin=0.9, n_raters=2)


def test_a_lab_member_runs_a_campaign_from_the_console(new_page, settings, tmp_path):
    settings.DATADAO_EXPORT_ROOT = str(tmp_path / "exports")
    lab = factories.LabFactory(name="Acme AI")
    factories.lab_deposit(lab, 20 * TOKEN)
    user = factories.lab_member(lab)
    page = new_page()
    log_in(page, user)
    problems: dict[str, list[str]] = {}

    # Create: the empty state leads to the form; a missing name is the API's message, then it is made.
    page.goto("/labs/campaigns/")
    assert "No campaigns yet" in page.inner_text("#empty-state")
    with page.expect_navigation():
        page.click("#empty-state a")
    page.select_option("#id_domain", "medicine")
    page.fill("#id_overlap", "2")
    with page.expect_navigation():
        page.click("#campaign-form button[type=submit]")
    assert "This field is required." in page.inner_text("#id_name_errors")
    problems["new campaign, with an error"] = _serious_problems(page)
    page.fill("#id_name", "Dosing pairs")
    with page.expect_navigation():
        page.click("#campaign-form button[type=submit]")
    campaign = Campaign.objects.get(lab=lab, name="Dosing pairs")
    assert page.url.endswith(f"/labs/campaigns/{campaign.pk}/") and page.inner_text("#campaign-status") == "Draft"

    # Upload a file with a bad third line: nothing imported, the line named; then the fixed file.
    _upload(page, _rows(bad_line=3))
    errors = page.inner_text("#import-errors")
    assert "line 3: responses: this campaign needs exactly 2 responses per task, got 1." in errors
    assert campaign.tasks.count() == 0
    problems["console, upload refused"] = _serious_problems(page)
    _upload(page, _rows())
    assert "4 tasks created, 0 skipped" in page.inner_text("#import-result")
    assert campaign.tasks.count() == 4

    # Fund from the rewards page, then back to the console and open.
    with page.expect_navigation():
        page.click("#fund-link")
    page.fill("#id_amount", "five")
    with page.expect_navigation():
        page.click("#fund-form button[type=submit]")
    assert "enter an amount such as 12.5" in page.inner_text("#amount-errors")
    problems["fund page, with an error"] = _serious_problems(page)
    page.fill("#id_amount", "5")
    with page.expect_navigation():
        page.click("#fund-form button[type=submit]")
    assert "Funded 5.00 DDF" in page.inner_text(".messages")
    assert "5.00 DDF" in page.inner_text("#escrow-balance")
    assert reward_selectors.escrow_balance(campaign=campaign) == 5 * TOKEN
    problems["fund page"] = _serious_problems(page)
    with page.expect_navigation():
        page.click("text=back to the campaign console")
    with page.expect_navigation():
        page.click("form[action$='/open'] button")
    assert page.inner_text("#campaign-status") == "Open"

    # Experts rate; export, wait for the build, download the train file.
    _seed_consensus(campaign)
    page.select_option("#id_format", "trl_preference")
    with page.expect_navigation():
        page.click("#export-form button[type=submit]")
    deadline = time.monotonic() + 30
    while page.inner_text("#export-list .export-state") != "Done":
        assert time.monotonic() < deadline, page.inner_text("#export-list")
        time.sleep(0.5)
        page.reload()
    problems["console, export done"] = _serious_problems(page)
    with page.expect_download() as download:
        page.click("#export-list a.download-train")
    first = Path(download.value.path()).read_text().splitlines()[0]
    row = json.loads(first)
    assert row["chosen"].endswith("once daily.") and row["rejected"].endswith("every hour.")
    assert not any(problems.values()), problems
