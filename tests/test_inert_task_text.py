"""Task text is untrusted (labs and models wrote it): on every page that shows it, HTML and script stay inert."""
from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.utils import timezone

from moderation import services as disputes
from annotations.models import Assignment, QualificationAttempt, QualificationItem, Task
from annotations.quality import services as quality_services
from tests import factories

pytestmark = pytest.mark.django_db

PAYLOAD = ('<script>alert("xss")</script><img src=x onerror=alert(1)><svg onload=alert(2)>'
           '[click](javascript:alert(3)) <a href="javascript:alert(4)">link</a><iframe src="//evil.example"></iframe>')


class LiveMarkup(HTMLParser):
    """Collects what a browser would act on: script bodies, event handlers, javascript: URLs, embeds."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        values = " ".join(value or "" for _, value in attrs)
        if tag in ("iframe", "object", "embed") or (tag in ("img", "svg") and (
                "alert" in values or "evil.example" in values or ("src", "x") in attrs)):
            self.found.append(f"<{tag} {values}>")
        for name, value in attrs:
            if name.startswith("on") and "alert" in (value or ""):
                self.found.append(f"{tag} {name}")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"{tag} {name}={value}")
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and "alert(" in data:
            self.found.append("script running alert(")


def assert_inert(response, *, must_show: str = "alert") -> str:
    assert response.status_code == 200
    html = response.content.decode()
    parser = LiveMarkup()
    parser.feed(html)
    assert parser.found == [], f"live markup on {response.wsgi_request.path}: {parser.found}"
    assert must_show in html  # the text itself is still there, as text
    return html


@pytest.fixture
def hostile():
    """A campaign whose name, guidelines, task ids, prompts and responses all carry the payload."""
    lab = factories.LabFactory()
    campaign = factories.open_campaign(lab=lab, name=f"Camp {PAYLOAD}", guidelines=PAYLOAD, overlap=3,
                                       max_overlap=3, responses_per_task=2)
    task = factories.TaskFactory(campaign=campaign, external_id=f"t-{PAYLOAD[:60]}",
                                 prompt=[{"role": "system", "content": PAYLOAD}, {"role": "user", "content": PAYLOAD}],
                                 responses=[PAYLOAD, f"second {PAYLOAD}"])
    return campaign, task


def test_rating_page_and_history(client, hostile):
    campaign, task = hostile
    expert = factories.ExpertFactory()
    now = timezone.now()
    lease = Assignment.objects.create(task=task, expert=expert, campaign=campaign, display_order=[1, 0],
                                      leased_at=now, expires_at=now + timedelta(minutes=20))
    Task.objects.filter(pk=task.pk).update(filled=1)
    client.force_login(expert.user)
    html = assert_inert(client.get(f"/rate/{campaign.pk}/"))
    assert "&lt;script&gt;alert" in html  # shown as text

    lease.delete()
    Task.objects.filter(pk=task.pk).update(filled=0)
    factories.rated_judgment(task=task, expert=expert, ranks=[1, 2])
    assert_inert(client.get("/rate/history/"))


def test_qualification_test_page(client, hostile):
    campaign, _ = hostile
    expert = factories.ExpertFactory()
    gold = factories.GoldTaskFactory(campaign=campaign, prompt=PAYLOAD, responses=[PAYLOAD, PAYLOAD])
    attempt = QualificationAttempt.objects.create(expert=expert, domain=campaign.domain, started_at=timezone.now(),
                                                  pass_mark=0.8)
    QualificationItem.objects.create(attempt=attempt, expert=expert, task=gold, display_order=[0, 1])
    client.force_login(expert.user)
    assert_inert(client.get(f"/expert/qualification/{attempt.pk}/"))


def test_lab_dashboard_pages(client, hostile):
    campaign, task = hostile
    raters = [factories.ExpertFactory() for _ in range(3)]
    factories.judgments_bulk([{"task": task, "expert": e, "ranks": r, "rationale": PAYLOAD}
                              for e, r in zip(raters, ([1, 2], [2, 1], [1, 2]))])
    quality_services.campaign_quality_compute(campaign_id=campaign.pk)
    member = factories.lab_member(campaign.lab)
    client.force_login(member)
    assert_inert(client.get("/labs/campaigns/"))
    assert_inert(client.get(f"/labs/campaigns/{campaign.pk}/quality"))


def test_admin_task_pages(client, hostile):
    campaign, task = hostile
    raters = [factories.ExpertFactory() for _ in range(3)]
    factories.judgments_bulk([{"task": task, "expert": e, "ranks": r, "rationale": PAYLOAD}
                              for e, r in zip(raters, ([1, 2], [2, 1], [1, 2]))])
    Task.objects.filter(pk=task.pk).update(state=Task.State.REVIEW)
    moderator = factories.rewards_moderator()
    admin_user = factories.UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    assert_inert(client.get(f"/admin/annotations/task/{task.pk}/change/"))
    client.force_login(moderator)
    assert_inert(client.get(f"/admin/annotations/taskawaitingreview/{task.pk}/change/"))
    assert_inert(client.post("/admin/annotations/taskawaitingreview/",
                             {"action": "adjudicate_with_ranking", "_selected_action": [task.pk]}))
    member = factories.lab_member(campaign.lab)
    judgment = task.judgments.first()
    from annotations.handles import rater_handle

    dispute, _ = disputes.dispute_open_lab(user=member, campaign_id=campaign.pk, task_external_id=task.external_id,
                                           rater=rater_handle(campaign.pk, judgment.expert_id),
                                           statement=f"Statement {PAYLOAD}")
    assert_inert(client.get(f"/admin/moderation/dispute/{dispute.pk}/change/"))
    client.force_login(member)
    assert_inert(client.get("/disputes/"))


def test_the_checker_sees_live_markup():
    parser = LiveMarkup()
    parser.feed(PAYLOAD)
    assert len(parser.found) >= 4  # script, img onerror, svg onload, javascript: link, iframe
