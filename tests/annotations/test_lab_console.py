"""The lab console pages: create a campaign, open/pause/close it, upload tasks, request and download exports.

Each action goes through the service its API endpoint calls; the messages a
page shows are the API's own, checked here against the API's answer.
"""
from __future__ import annotations

import html
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotations.models import Campaign, Task
from exports.models import Export
from tests import factories
from tests.exports.export_data import scenario

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(client, lab_user):
    client.force_login(lab_user)
    return client


def _text(response) -> str:
    return html.unescape(response.content.decode())


def _row(n: int, *, responses: int = 2, prompt: str | None = None) -> dict:
    return {"external_id": f"q{n}", "prompt": prompt or f"Question {n}: which dose is right?",
            "responses": [{"model": f"m{i}", "text": f"Answer {i} to {n}"} for i in range(responses)]}


def _jsonl(rows: list[dict], name: str = "tasks.jsonl") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, "".join(json.dumps(r) + "\n" for r in rows).encode(), "application/x-ndjson")


def _api_messages(response) -> list[str]:
    return [e["message"] for e in response.json()["errors"]]


def _form_data(form) -> dict:
    """What a browser sends for a rendered form left as it is: every value shown, ticked boxes as "on"."""
    data = {}
    for field in form:
        value = field.value()
        if value is True:
            data[field.name] = "on"
        elif value not in (None, False, ""):
            data[field.name] = value
    return data


# --------------------------------------------------------------------------
# Creating a campaign
# --------------------------------------------------------------------------


def test_create_shows_the_apis_messages_then_creates_and_goes_to_the_console(member, lab_client, lab, settings):
    page = member.get("/labs/campaigns/new/")
    assert page.status_code == 200
    shown = {name: page.context["form"][name].value() for name in ("overlap", "rationale_min_length", "min_stake")}
    assert shown == {"overlap": 3, "rationale_min_length": 20, "min_stake": settings.DATADAO_MIN_STAKE}  # the API's

    bad = {"domain": "law", "responses_per_task": "9", "overlap": "4", "max_overlap": "2", "attribute_axes": "Bad Axis"}
    refused = member.post("/labs/campaigns/new/", bad)
    assert refused.status_code == 400
    api = lab_client.post("/api/v1/campaigns/",
                          {"domain": "law", "responses_per_task": 9, "attribute_axes": ["Bad Axis"]}, format="json")
    assert api.status_code == 400
    text = _text(refused)
    for message in _api_messages(api):  # name required, K at most 8, the axis pattern: word for word
        assert message in text
    assert "must be at least overlap." not in text  # the serializer's cross-field check comes after field checks
    assert not Campaign.objects.exists()

    refused = member.post("/labs/campaigns/new/", {"name": "Contract clauses", "domain": "law", "overlap": "4",
                                                   "max_overlap": "2"})
    assert refused.status_code == 400 and "must be at least overlap." in _text(refused)
    refused = member.post("/labs/campaigns/new/", {"name": "Contract clauses", "domain": "law", "data_for_sale": "on"})
    assert refused.status_code == 400 and "give the price of one export, in base units." in _text(refused)

    created = member.post("/labs/campaigns/new/", {
        "name": "Contract clauses", "domain": "law", "guidelines": "Prefer the enforceable clause.",
        "responses_per_task": "3", "overlap": "4", "reward_per_judgment": "2000000", "min_stake": "0",
        "attribute_axes": "correctness, clarity", "rationale_required": "on", "rationale_min_length": "30",
    })
    campaign = Campaign.objects.get(lab=lab, name="Contract clauses")
    assert created.status_code == 302 and created["Location"] == f"/labs/campaigns/{campaign.pk}/"
    assert (campaign.status, campaign.responses_per_task, campaign.overlap, campaign.max_overlap) == ("draft", 3, 4, 5)
    assert campaign.attribute_axes == ["correctness", "clarity"] and campaign.reward_per_judgment == 2_000_000
    assert campaign.rationale_min_length == 30 and campaign.strength_scale is False  # an unticked box
    console = member.get(created["Location"])
    assert console.status_code == 200 and "Contract clauses" in _text(console) and "Created" in _text(console)


def test_the_form_left_as_shown_makes_the_campaign_the_api_makes(member, lab_client, lab):
    form = member.get("/labs/campaigns/new/").context["form"]
    data = {**_form_data(form), "name": "From the page", "domain": "code"}
    assert member.post("/labs/campaigns/new/", data).status_code == 302
    assert lab_client.post("/api/v1/campaigns/", {"name": "From the API", "domain": "code"},
                           format="json").status_code == 201
    page, api = (Campaign.objects.get(lab=lab, name=name) for name in ("From the page", "From the API"))
    skip = {"id", "name", "created_at", "updated_at"}
    fields = [f.attname for f in Campaign._meta.concrete_fields if f.attname not in skip]
    assert {f: getattr(page, f) for f in fields} == {f: getattr(api, f) for f in fields}


def test_a_member_of_several_labs_chooses_the_lab(client, lab):
    user = factories.lab_member(lab)
    second = factories.LabFactory(name="Second lab")
    second.members.add(user)
    client.force_login(user)
    refused = client.post("/labs/campaigns/new/", {"name": "Which lab?", "domain": "math"})
    assert refused.status_code == 400 and "you belong to several labs; name one by its slug." in _text(refused)
    chosen = client.post("/labs/campaigns/new/", {"name": "Which lab?", "domain": "math", "lab": second.slug})
    assert chosen.status_code == 302
    assert Campaign.objects.get(name="Which lab?").lab == second


# --------------------------------------------------------------------------
# Editing a campaign
# --------------------------------------------------------------------------


def test_the_edit_page_shows_the_current_values_and_what_the_status_fixes(member, lab):
    draft = factories.CampaignFactory(lab=lab, name="Triage", attribute_axes=["correctness", "clarity"])
    console = member.get(f"/labs/campaigns/{draft.pk}/")
    assert f'href="/labs/campaigns/{draft.pk}/edit/"' in console.content.decode()
    page = member.get(f"/labs/campaigns/{draft.pk}/edit/")
    form = page.context["form"]
    assert page.status_code == 200 and "lab" not in form.fields
    assert (form["name"].value(), form["overlap"].value(), form["attribute_axes"].value()) == (
        "Triage", 3, "correctness, clarity")
    assert not any(field.disabled for field in form.fields.values())  # a draft: everything may change

    running = factories.open_campaign(lab=lab, reward_per_judgment=5)
    form = member.get(f"/labs/campaigns/{running.pk}/edit/").context["form"]
    assert form["reward_per_judgment"].value() == 5 and form.fields["reward_per_judgment"].disabled
    assert form.fields["reward_per_judgment"].help_text.startswith(
        "Read-only: can change only while the campaign is a draft")
    assert not form.fields["name"].disabled and not form.fields["overlap"].disabled
    assert "can only rise once the campaign has opened" in form.fields["overlap"].help_text


def test_a_refused_edit_shows_the_reason_in_place(member, lab_client, lab):
    running = factories.open_campaign(lab=lab)
    refused = member.post(f"/labs/campaigns/{running.pk}/edit/", {"name": "Renamed", "overlap": "2"})
    assert refused.status_code == 409
    api = lab_client.patch(f"/api/v1/campaigns/{running.pk}/", {"overlap": 2}, format="json")
    assert api.status_code == 409
    assert "Overlap: can only rise once the campaign has opened and experts may have rated (it is 3)." in _text(
        refused)
    assert _api_messages(api)[0] == "overlap: can only rise once the campaign has opened and experts may have " \
                                    "rated (it is 3)."
    # A field the page shows read-only, sent anyway, is refused by the same rule.
    refused = member.post(f"/labs/campaigns/{running.pk}/edit/", {"q_min": "0.7"})
    assert refused.status_code == 409 and "can change only while the campaign is a draft" in _text(refused)
    invalid = member.post(f"/labs/campaigns/{running.pk}/edit/", {"overlap": "0"})
    assert invalid.status_code == 400 and "Ensure this value is greater than or equal to 1." in _text(invalid)
    running.refresh_from_db()
    assert (running.name, running.overlap, running.q_min) != ("Renamed", 2, 0.7) and running.overlap == 3

    Campaign.objects.filter(pk=running.pk).update(status=Campaign.Status.CLOSED)
    page = member.get(f"/labs/campaigns/{running.pk}/edit/")
    assert "a closed campaign cannot be edited." in _text(page)
    assert all(field.disabled for field in page.context["form"].fields.values())
    assert member.post(f"/labs/campaigns/{running.pk}/edit/", {"name": "Late"}).status_code == 409


def test_a_good_edit_saves_and_goes_back_to_the_console(member, lab):
    running = factories.open_campaign(lab=lab, name="Triage", strength_scale=True)
    form = member.get(f"/labs/campaigns/{running.pk}/edit/").context["form"]
    data = {**_form_data(form), "name": "Triage, second round", "overlap": "4", "guidelines": ""}
    saved = member.post(f"/labs/campaigns/{running.pk}/edit/", data)
    assert saved.status_code == 302 and saved["Location"] == f"/labs/campaigns/{running.pk}/"
    running.refresh_from_db()
    assert (running.name, running.overlap, running.guidelines) == ("Triage, second round", 4, "")
    assert running.strength_scale is True  # a read-only box is not sent, so not taken for unticked
    console = _text(member.get(saved["Location"]))
    assert "Triage, second round" in console and "Saved the settings" in console


def test_an_edit_can_empty_a_list_field(member, lab):
    draft = factories.CampaignFactory(lab=lab, attribute_axes=["correctness", "style"])
    form = member.get(f"/labs/campaigns/{draft.pk}/edit/").context["form"]
    assert form.initial["attribute_axes"] == "correctness, style"
    saved = member.post(f"/labs/campaigns/{draft.pk}/edit/", {**_form_data(form), "attribute_axes": ""})
    assert saved.status_code == 302, _text(saved)
    draft.refresh_from_db()
    assert draft.attribute_axes == []
    kept = member.post(f"/labs/campaigns/{draft.pk}/edit/", {**_form_data(form), "attribute_axes": "safety"})
    assert kept.status_code == 302
    draft.refresh_from_db()
    assert draft.attribute_axes == ["safety"]


# --------------------------------------------------------------------------
# Uploading tasks
# --------------------------------------------------------------------------


def test_a_bad_line_imports_nothing_then_the_fixed_file_imports(member, lab):
    campaign = factories.CampaignFactory(lab=lab)
    url = f"/labs/campaigns/{campaign.pk}/tasks/import"
    rows = [_row(1), _row(2), _row(3, responses=1), _row(4)]
    refused = member.post(url, {"file": _jsonl(rows)})
    assert refused.status_code == 400
    text = _text(refused)
    assert "Nothing was imported from tasks.jsonl" in text
    assert "line 3: responses: this campaign needs exactly 2 responses per task, got 1." in text
    assert not Task.objects.filter(campaign=campaign).exists()

    rows[2] = _row(3, prompt="question 1: WHICH dose is right? ")  # fixed, and a repeat of line 1's prompt
    imported = member.post(url, {"file": _jsonl(rows)})
    assert imported.status_code == 200
    text = _text(imported)
    assert "4 tasks created, 0 skipped" in text
    assert "<td>3</td><td>q3</td><td>q1 (line 1)</td>" in text.replace("\n", "")
    assert Task.objects.filter(campaign=campaign).count() == 4

    again = member.post(url, {"file": _jsonl(rows[:2] + [_row(5)])})
    assert "1 task created, 2 skipped" in _text(again)
    assert Campaign.objects.get(pk=campaign.pk).task_count == 5


def test_a_json_array_file_imports_and_its_errors_name_the_row(member, lab):
    campaign = factories.CampaignFactory(lab=lab)
    url = f"/labs/campaigns/{campaign.pk}/tasks/import"
    bad = SimpleUploadedFile("tasks.json", json.dumps([_row(1), {"external_id": "q2"}]).encode(), "application/json")
    text = _text(member.post(url, {"file": bad}))
    assert "line 2: prompt: is required." in text and not Task.objects.exists()
    good = SimpleUploadedFile("tasks.json", json.dumps([_row(1), _row(2)]).encode(), "application/json")
    assert "2 tasks created" in _text(member.post(url, {"file": good}))
    broken = SimpleUploadedFile("tasks.json", b"[{", "application/json")
    response = member.post(url, {"file": broken})
    assert response.status_code == 400 and "invalid JSON" in _text(response)


def test_upload_refusals_are_the_apis(member, lab, settings):
    campaign = factories.CampaignFactory(lab=lab)
    url = f"/labs/campaigns/{campaign.pk}/tasks/import"
    missing = member.post(url, {})
    assert missing.status_code == 400 and "choose a JSONL or JSON file of task rows." in _text(missing)
    settings.DATADAO_MAX_IMPORT_BYTES = 10
    too_big = member.post(url, {"file": _jsonl([_row(1)])})
    assert too_big.status_code == 413 and "the limit is 10 bytes." in _text(too_big)
    settings.DATADAO_MAX_IMPORT_BYTES = 10**6
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.CLOSED)
    closed = member.post(url, {"file": _jsonl([_row(1)])})
    assert closed.status_code == 409 and "the campaign is closed; it takes no new tasks." in _text(closed)
    assert not Task.objects.exists()


# --------------------------------------------------------------------------
# Open, pause, close
# --------------------------------------------------------------------------


def test_page_uploads_share_the_apis_import_throttle(member, lab, lab_client, monkeypatch):
    from datadao.api import ImportThrottle

    monkeypatch.setattr(ImportThrottle, "THROTTLE_RATES", {"import": "2/min"})
    draft = factories.CampaignFactory(lab=lab)
    url = f"/labs/campaigns/{draft.pk}/tasks/import"
    assert member.post(url, {"file": _jsonl([_row(1)])}).status_code == 200
    assert lab_client.post(f"/api/v1/campaigns/{draft.pk}/tasks/import", [], format="json").status_code == 400
    refused = member.post(url, {"file": _jsonl([_row(2)])})
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "too many uploads" in _text(refused)
    assert list(draft.tasks.values_list("external_id", flat=True)) == ["q1"]


def test_open_pause_close_through_the_state_machine_with_its_409s(member, lab_client, lab):
    campaign = factories.CampaignFactory(lab=lab)
    base = f"/labs/campaigns/{campaign.pk}"
    console = _text(member.get(f"{base}/"))
    assert f'action="{base}/open"' in console and f'action="{base}/pause"' not in console

    refused = member.post(f"{base}/open", follow=True)
    api = lab_client.post(f"/api/v1/campaigns/{campaign.pk}/open")
    assert api.status_code == 409 and refused.redirect_chain == [(f"{base}/", 302)]
    # "import at least one task before opening the campaign.", word for word
    assert f"Could not open the campaign: {_api_messages(api)[0]}" in _text(refused)
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"

    member.post(f"{base}/tasks/import", {"file": _jsonl([_row(1)])})
    opened = member.post(f"{base}/open")
    assert opened.status_code == 302 and Campaign.objects.get(pk=campaign.pk).status == "open"
    assert "Opened" in _text(member.get(opened["Location"]))
    assert member.post(f"{base}/pause").status_code == 302
    assert Campaign.objects.get(pk=campaign.pk).status == "paused"
    again = member.post(f"{base}/pause", follow=True)  # a stale page's button
    assert "Could not pause the campaign: cannot pause a campaign that is paused." in _text(again)
    assert member.post(f"{base}/close").status_code == 302
    closed = _text(member.get(f"{base}/"))
    assert Campaign.objects.get(pk=campaign.pk).status == "closed"
    assert 'Status: <strong id="campaign-status">Closed</strong>' in closed and f'{base}/open"' not in closed
    assert member.get(f"{base}/open").status_code == 405


# --------------------------------------------------------------------------
# Exports
# --------------------------------------------------------------------------


@pytest.fixture
def export_root(settings, tmp_path):
    settings.DATADAO_EXPORT_ROOT = str(tmp_path / "exports")


def test_request_an_export_and_download_its_files(member, lab_client, lab, export_root,
                                                  django_capture_on_commit_callbacks):
    campaign = scenario(lab).campaign
    url = f"/labs/campaigns/{campaign.pk}/exports"
    refused = member.post(url, {"format": "trl_preference", "use": "military", "test_fraction": "0.6"})
    assert refused.status_code == 400
    api = lab_client.post(url.replace("/labs/", "/api/v1/"), {"format": "trl_preference", "test_fraction": 0.6},
                          format="json")
    assert _api_messages(api)[0] in _text(refused)  # the serializer's bound on test_fraction
    refused = member.post(url, {"format": "trl_preference", "use": "military"})
    assert "its licence (CC-BY-4.0) allows research, commercial-training" in _text(refused)
    assert not Export.objects.exists()

    console = member.get(f"/labs/campaigns/{campaign.pk}/")
    with django_capture_on_commit_callbacks(execute=True):
        requested = member.post(url, {**_form_data(console.context["export_form"]), "format": "reward_pairs",
                                      "use": "research", "test_fraction": "0.3"})
    assert requested.status_code == 302
    export = Export.objects.get(campaign=campaign)
    assert export.state == Export.State.DONE and export.requested_by.labs.filter(pk=lab.pk).exists()
    assert export.params["exclude_flagged_raters"] is True and export.params["min_margin"] == 0.6  # API defaults

    text = _text(member.get(requested["Location"]))
    download = f"/api/v1/exports/{export.pk}/download"
    assert f"Export {export.pk} requested" in text and "Done" in text
    assert f"{export.progress_done} / {export.progress_total} tasks" in text
    assert f'href="{download}"' in text and f'href="{download}?part=card"' in text and f"{download}?part=test" in text
    train = member.get(download)
    assert train.status_code == 200
    first = b"".join(train.streaming_content).splitlines()[0]
    assert set(json.loads(first)) >= {"prompt", "chosen", "rejected"}
    card = member.get(f"{download}?part=card")
    assert card.status_code == 200 and card.content.startswith(b"---")

    with django_capture_on_commit_callbacks(execute=True):
        member.post(url, {"format": "judgments"})  # boxes left unticked: flagged raters kept, ties kept
    params = Export.objects.exclude(pk=export.pk).get().params
    assert params["exclude_flagged_raters"] is False and params["drop_ties"] is False


# --------------------------------------------------------------------------
# Who may see the console
# --------------------------------------------------------------------------


ROUTES = [("get", "/"), ("post", "/open"), ("post", "/pause"), ("post", "/close"), ("post", "/tasks/import"),
          ("post", "/exports")]


def test_another_labs_member_an_expert_and_a_moderator_get_404(client, lab):
    campaign = factories.open_campaign(lab=lab, task_count=1)
    outsiders = [factories.lab_member(), factories.ExpertFactory().user, factories.rewards_moderator()]
    for user in outsiders:
        client.force_login(user)
        for method, suffix in ROUTES:
            response = getattr(client, method)(f"/labs/campaigns/{campaign.pk}{suffix}")
            assert response.status_code == 404, (user.username, suffix, response.status_code)
    assert Campaign.objects.get(pk=campaign.pk).status == "open"
    for user in outsiders[1:]:
        client.force_login(user)
        assert client.get("/labs/campaigns/new/").status_code == 404
    client.logout()
    response = client.get(f"/labs/campaigns/{campaign.pk}/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_campaign_list_and_menu_lead_to_the_console(member, lab):
    empty = _text(member.get("/labs/campaigns/"))
    assert "No campaigns yet — " in empty and 'href="/labs/campaigns/new/">create one</a>' in empty
    assert 'href="/labs/campaigns/new/">New campaign</a>' in empty  # the header menu
    campaign = factories.CampaignFactory(lab=lab, name="Cardiology pairs")
    listed = _text(member.get("/labs/campaigns/"))
    assert f'href="/labs/campaigns/{campaign.pk}/">Cardiology pairs</a>' in listed
    assert f'href="/wallet/campaigns/{campaign.pk}/fund/"' in _text(member.get(f"/labs/campaigns/{campaign.pk}/"))
