"""Browser pages (server side): apply, qualification, rating, skip, history."""
import re

import pytest
from django.contrib.auth.models import User

from annotations.models import Assignment, Expert, ExpertDomain, Judgment
from tests import factories

pytestmark = pytest.mark.django_db

RATIONALE = "A checks the contraindication first."


@pytest.fixture
def expert_browser(client, expert):
    client.force_login(expert.user)
    return client


def rate_url(campaign):
    return f"/rate/{campaign.pk}/"


def take_next(client, campaign):
    response = client.post(f"/rate/{campaign.pk}/next", follow=True)
    assert response.status_code == 200
    return response


# --- apply and qualify -------------------------------------------------------------


def test_visitor_signs_up_and_applies_in_one_form(client):
    response = client.post("/expert/apply/", {
        "account-username": "dr_new", "account-email": "new@example.org",
        "account-password1": "a-long-passphrase-42", "account-password2": "a-long-passphrase-42",
        "domains": ["medicine", "law"], "credentials": "JD and MD, 8 years of medical law",
        "wallet_address": factories.wallet("new"),
    }, follow=True)
    assert response.status_code == 200
    expert = Expert.objects.get(user__username="dr_new")
    assert expert.state == Expert.State.APPLIED and expert.domains == ["medicine", "law"]
    assert "a moderator will review" in response.content.decode()


def test_bad_wallet_is_explained_on_the_form_and_nothing_saved(client):
    user = factories.UserFactory()
    client.force_login(user)
    lower = factories.wallet("x").lower()
    response = client.post("/expert/apply/", {
        "domains": ["medicine"], "credentials": "MD, 10 years internal medicine", "wallet_address": lower,
    })
    assert response.status_code == 200
    assert "not EIP-55 checksummed; did you mean " + factories.wallet("x") in response.content.decode()
    assert not Expert.objects.filter(user=user).exists()
    anonymous_fail = client.post("/expert/apply/", {"account-username": "x"})
    assert anonymous_fail.status_code == 200
    assert User.objects.filter(username="x").count() == 0


def test_qualification_through_the_pages(client):
    from annotations import experts

    campaign = factories.CampaignFactory()
    for _ in range(5):
        factories.GoldTaskFactory(campaign=campaign)
    user = factories.UserFactory()
    expert = experts.expert_apply(
        user=user, domains=["medicine"], credentials="MD, 10 years internal medicine", wallet_address=factories.wallet(9),
    )
    experts.expert_approve(expert=expert)
    client.force_login(user)
    status = client.get("/expert/")
    assert "Take the Medicine test" in status.content.decode()
    test_page = client.post("/expert/qualification/start", {"domain": "medicine"}, follow=True)
    attempt = expert.qualification_attempts.get()
    page = test_page.content.decode()
    assert page.count('value="tie"') == 5
    answers = {}
    for item in attempt.items.all():
        answers[f"best_{item.pk}"] = "AB"[item.display_order.index(0)]  # gold: the first upload is best
    done = client.post(f"/expert/qualification/{attempt.pk}/", answers, follow=True)
    assert "Passed with 100%" in done.content.decode()
    assert ExpertDomain.objects.get(expert=expert).state == ExpertDomain.State.VETTED


# --- rating ---------------------------------------------------------------------------


def test_next_button_leases_and_the_page_shows_the_task(expert_browser, open_campaign):
    factories.TaskFactory(campaign=open_campaign, responses=["**Careful** answer", "Hasty answer"])
    page = expert_browser.get(rate_url(open_campaign)).content.decode()
    assert 'id="next-button"' in page and "Prefer the answer a careful clinician" in page
    html = take_next(expert_browser, open_campaign).content.decode()
    lease = Assignment.objects.get()
    assert "<strong>Careful</strong> answer" in html and 'id="lease-timer"' in html
    assert html.index("Response A") < html.index("Response B")
    shown_first = "Careful" if lease.display_order[0] == 0 else "Hasty"
    assert html.index(shown_first) < html.index("Response B")


def test_task_text_cannot_inject_html_and_model_names_stay_hidden(expert_browser, open_campaign):
    factories.TaskFactory(
        campaign=open_campaign,
        prompt=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "<script>alert('p')</script>Hi"}],
        responses=['<img src=x onerror="alert(1)">**bold**', "[click](javascript:alert(2)) <iframe src=//evil>"],
    )
    html = take_next(expert_browser, open_campaign).content.decode()
    body = html.split("<main>")[1]
    assert "<script>alert" not in body and "&lt;script&gt;alert(" in body  # shown as text, not run
    assert "<img" not in body and "<iframe" not in body and "javascript:" not in body
    assert "<strong>bold</strong>" in body
    assert 'class="turn turn-system"' in body and 'class="turn turn-user"' in body
    assert "model-0" not in html and "model-1" not in html


def test_submitting_the_form_records_the_judgment_and_offers_next(expert_browser, open_campaign, expert):
    factories.TaskFactory(campaign=open_campaign)
    take_next(expert_browser, open_campaign)
    lease = Assignment.objects.get()
    response = expert_browser.post(
        f"/rate/assignment/{lease.pk}/judgment", {"strength": "-2", "rationale": RATIONALE, "flags": ["unsafe"]},
        follow=True,
    )
    html = response.content.decode()
    # Zero wait: with nothing left, the page says so at once (no Next screen between tasks).
    assert "Judgment saved." in html and 'id="empty-state"' in html
    judgment = Judgment.objects.get()
    expected_strength = -2 if lease.display_order == [0, 1] else 2
    assert judgment.strength == expected_strength and judgment.flags == ["unsafe"]
    assert re.search(r'id="rated-count">1<', html)


def test_form_errors_are_shown_and_input_kept(expert_browser):
    campaign = factories.open_campaign(responses_per_task=3, attribute_axes=["correctness"])
    factories.TaskFactory(campaign=campaign)
    take_next(expert_browser, campaign)
    lease = Assignment.objects.get()
    response = expert_browser.post(f"/rate/assignment/{lease.pk}/judgment", {
        "rank_A": "1", "rank_B": "2", "rationale": "short", "rating_correctness_A": "4",
    })
    assert response.status_code == 400
    html = response.content.decode()
    # In the page's words: its headings, its keys.
    assert "Your ranking: rank every response, best first (keys 1–3); missing C." in html
    assert "Rationale: write at least 20 characters (you wrote 5)." in html
    assert "Response B, correctness: choose 1–5." in html and "Response A, correctness" not in html
    assert ">short</textarea>" in html and re.search(r'name="rating_correctness_A" value="4" checked', html)
    assert Judgment.objects.count() == 0
    ok = expert_browser.post(f"/rate/assignment/{lease.pk}/judgment", {
        "rank_A": "1", "rank_B": "1", "rank_C": "3", "rationale": RATIONALE,
        "rating_correctness_A": "4", "rating_correctness_B": "4", "rating_correctness_C": "2",
    })
    assert ok.status_code == 302
    slot_ranks = [1, 1, 3]
    expected = [0, 0, 0]
    for slot, position in enumerate(lease.display_order):
        expected[position] = slot_ranks[slot]
    assert Judgment.objects.get().ranks == expected


def test_skip_from_the_page(expert_browser, open_campaign):
    factories.TaskFactory(campaign=open_campaign)
    take_next(expert_browser, open_campaign)
    lease = Assignment.objects.get()
    response = expert_browser.post(f"/rate/assignment/{lease.pk}/skip", {"reason": "Outside my expertise"}, follow=True)
    assert "will not be offered to you again" in response.content.decode()
    lease.refresh_from_db()
    assert lease.state == Assignment.State.SKIPPED and lease.skip_reason == "Outside my expertise"


def test_history_lists_only_my_judgments_as_i_saw_them(expert_browser, open_campaign, expert):
    from annotations import assignment as svc
    from annotations import judgments

    factories.TaskFactory(campaign=open_campaign, prompt="Mine: dosing question")
    other = factories.ExpertFactory()
    mine = svc.assignment_next(expert=expert, campaign=open_campaign)
    judgments.judgment_submit(expert=expert, assignment_id=mine.pk, data=judgments.JudgmentInput(
        ranking=["B", "A"], strength=3, rationale="My own rationale, long enough."))
    theirs = svc.assignment_next(expert=other, campaign=open_campaign)
    judgments.judgment_submit(expert=other, assignment_id=theirs.pk, data=judgments.JudgmentInput(
        ranking=["A", "B"], strength=-1, rationale="Someone else's secret rationale."))
    html = expert_browser.get("/rate/history/").content.decode()
    assert "1 judgment." in html and "My own rationale" in html and "B &gt; A" in html
    assert "B much better" in html
    assert "secret rationale" not in html and "model-0" not in html


def test_rating_pages_are_for_experts_only(client, open_campaign):
    client.force_login(factories.lab_member())
    assert client.get(rate_url(open_campaign)).status_code == 404
    assert client.post(f"/rate/{open_campaign.pk}/next").status_code == 404
    client.logout()
    assert client.get(rate_url(open_campaign)).status_code == 302  # to the login page


def test_ineligible_expert_sees_why(client, open_campaign):
    law = factories.ExpertFactory(domains=["law"])
    client.force_login(law.user)
    html = client.get(rate_url(open_campaign)).content.decode()
    assert "You cannot rate this campaign: you are not vetted in Medicine" in html
    assert 'id="next-button"' not in html


def test_strength_form_asks_for_the_strength_only(expert_browser, open_campaign):
    factories.TaskFactory(campaign=open_campaign)
    take_next(expert_browser, open_campaign)
    lease = Assignment.objects.get()
    response = expert_browser.post(f"/rate/assignment/{lease.pk}/judgment", {"rationale": RATIONALE})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Which response is better? Choose one of the seven answers" in html
    assert "Strength:" not in html and "Ranking:" not in html


def test_rating_page_shows_settled_earnings_in_this_campaign(expert_browser, open_campaign, expert):
    from datetime import timedelta

    from django.utils import timezone

    from rewards import services, settlement

    token = 10**6
    open_campaign.reward_per_judgment = token
    open_campaign.save()
    peers = [factories.ExpertFactory() for _ in range(2)]
    factories.lab_deposit(open_campaign.lab, 200 * token)
    services.campaign_fund(campaign=open_campaign, amount=200 * token, actor=None)
    at = timezone.now() - timedelta(days=2)
    for k in range(40):  # enough work for pay: quality is judged on its lower confidence bound
        task = factories.TaskFactory(campaign=open_campaign)
        for e in [expert, *peers]:
            factories.rated_judgment(task=task, expert=e, ranks=[1, 2] if k % 2 else [2, 1], submitted_at=at)
    before = expert_browser.get(rate_url(open_campaign)).content.decode()
    settlement.epoch_settle(epoch_id=factories.EpochFactory(campaign=open_campaign, index=0).pk)
    after = expert_browser.get(rate_url(open_campaign)).content.decode()
    assert re.search(r'id="earnings">0\.00 DDF<', before)
    assert re.search(r'id="earnings">40\.00 DDF<', after)
