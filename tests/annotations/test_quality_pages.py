"""Lab pages: the campaigns list and the quality dashboard with server-drawn SVG."""
from __future__ import annotations

import re

import pytest

from annotations.models import Expert, QualityReport, TaskConsensus
from annotations.quality import services
from tests import factories
from tests.annotations.quality_crowds import planted_campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def member_client(client, lab_user):
    client.force_login(lab_user)
    return client


def test_dashboard_draws_alpha_and_margins_from_real_data(member_client, lab):
    campaign, _, _ = planted_campaign(lab=lab)
    services.campaign_quality_compute(campaign_id=campaign.pk)
    page = member_client.get(f"/labs/campaigns/{campaign.pk}/quality")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("<svg") == 2

    report = QualityReport.objects.get(campaign=campaign)
    alpha = report.figures["alpha_nominal"]
    assert f"{alpha['value']:.3f}" in html
    assert f"[{alpha['low']:.3f}, {alpha['high']:.3f}]" in html  # the point's tooltip carries its interval

    margins = list(TaskConsensus.objects.filter(campaign=campaign).values_list("margin", flat=True))
    top_bin = sum(1 for m in margins if m >= 0.9)
    margin_svg = re.search(r'id="margin-chart">(.*?)</figure>', html, re.S).group(1)
    assert f"margin 0.9-1.0: {top_bin} tasks" in margin_svg
    assert f"({len(margins)} tasks)" in margin_svg

    assert "position bias" in html
    for expert in Expert.objects.select_related("user"):
        assert not re.search(rf"\b{re.escape(expert.user.username)}\b", html)
        assert expert.user.email not in html


def test_dashboard_empty_state_before_any_judgment(member_client, lab):
    campaign = factories.open_campaign(lab=lab)
    factories.tasks_bulk(campaign, 3)
    html = member_client.get(f"/labs/campaigns/{campaign.pk}/quality").content.decode()
    assert "No judgments yet" in html and "<svg" not in html
    assert "0 of 9 judgments" in html


def test_dashboard_is_404_for_another_lab_and_asks_strangers_to_log_in(client, lab):
    campaign = factories.open_campaign(lab=lab)
    client.force_login(factories.lab_member())
    assert client.get(f"/labs/campaigns/{campaign.pk}/quality").status_code == 404
    client.logout()
    assert client.get(f"/labs/campaigns/{campaign.pk}/quality").status_code == 302


def test_campaigns_page_lists_the_labs_campaigns_with_progress(member_client, lab):
    mine = factories.open_campaign(lab=lab, name="Cardiology pairs")
    factories.tasks_bulk(mine, 4)
    theirs = factories.open_campaign(name="Someone else's campaign")
    html = member_client.get("/labs/campaigns/").content.decode()
    assert "Cardiology pairs" in html and theirs.name not in html
    assert f"/labs/campaigns/{mine.pk}/quality" in html
    assert "0 / 12" in html  # judgments of judgments wanted (4 tasks x overlap 3)


def test_progress_counts_say_what_they_count(member_client, lab):
    campaign = factories.open_campaign(lab=lab, overlap=3)
    factories.tasks_bulk(campaign, 3)
    factories.tasks_bulk(campaign, 2, prefix="gold", gold=[1, 2])
    html = member_client.get(f"/labs/campaigns/{campaign.pk}/quality").content.decode()
    assert "0 of 9 judgments on regular tasks at overlap 3" in html  # gold tasks are not in the 9
    assert "2 gold tasks, answered apart from these counts" in html
