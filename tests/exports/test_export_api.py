"""Exports API: request (202), status and progress, listing, streamed downloads, bundle, permissions."""
from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from exports import formats
from exports.models import Export
from tests import factories
from tests.exports.export_data import export_path, scenario

datasets = pytest.importorskip("datasets", reason="the bundle is checked with the datasets library")


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    settings.DATADAO_EXPORT_ROOT = str(tmp_path / "exports")


@pytest.fixture
def data(lab):
    return scenario(lab)


def _request(client, campaign, capture, **body):
    with capture(execute=True):
        return client.post(f"/api/v1/campaigns/{campaign.pk}/exports", body, format="json")


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_request_answers_202_and_the_job_builds_the_export(lab_client, data, django_capture_on_commit_callbacks):
    response = _request(lab_client, data.campaign, django_capture_on_commit_callbacks, format="reward_pairs",
                        test_fraction=0.3, use="research")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["id"] and body["url"].endswith(f"/api/v1/exports/{body['id']}/")
    status = lab_client.get(f"/api/v1/exports/{body['id']}/").json()
    assert status["state"] == "done" and status["error"] == ""
    assert status["progress"] == {"done": 10, "total": 10, "unit": "tasks"}
    export = Export.objects.get(pk=body["id"])
    assert status["rows"] == {"train": export.rows_train, "test": export.rows_test}
    assert status["sha256"] == {"train": export.sha256_train, "test": export.sha256_test, "card": export.sha256_card}
    assert status["params"]["min_margin"] == 0.6 and "tokenizer_path" not in status["params"]
    assert status["params"]["min_raters"] == 2
    assert status["files"]["bundle"].endswith(f"/api/v1/exports/{export.pk}/download?bundle=zip")
    assert export.requested_by is not None


def test_list_is_paginated_newest_first(lab_client, data, django_capture_on_commit_callbacks):
    ids = [_request(lab_client, data.campaign, django_capture_on_commit_callbacks, format=f).json()["id"]
           for f in (formats.TRL_PREFERENCE, formats.RANKING, formats.JUDGMENTS)]
    page = lab_client.get(f"/api/v1/campaigns/{data.campaign.pk}/exports?page_size=2").json()
    assert page["count"] == 3 and [e["id"] for e in page["results"]] == ids[::-1][:2] and page["next"]


@pytest.mark.parametrize(("body", "field", "says"), [
    ({"format": "trl_preference", "use": "military"}, "use", "licence (CC-BY-4.0) allows research, commercial-training"),
    ({"format": "dpo"}, "format", ""),
    ({"format": "ranking", "tokenizer": "tiny"}, "tokenizer", "pair formats"),
    ({"format": "trl_preference", "max_tokens": 512}, "max_tokens", "tokenizer"),
    ({"format": "trl_preference", "tokenizer": "/etc"}, "tokenizer", "unknown tokenizer"),
    ({"format": "trl_preference", "test_fraction": 0.6}, "test_fraction", ""),
    ({"format": "trl_preference", "min_margin": 1.5}, "min_margin", ""),
    ({"format": "trl_preference", "min_raters": 0}, "min_raters", "1"),
    ({"format": "ranking", "min_raters": 2.5}, "min_raters", ""),
    ({"format": "trl_preference", "file_format": "csv"}, "file_format", ""),
])
def test_bad_requests_are_refused_with_the_field_named(lab_client, data, body, field, says):
    response = lab_client.post(f"/api/v1/campaigns/{data.campaign.pk}/exports", body, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors[0]["field"] == field and says in errors[0]["message"]
    assert not Export.objects.exists()


def test_attributes_need_a_campaign_with_attributes(lab_client, lab):
    campaign = factories.open_campaign(lab=lab)
    response = lab_client.post(f"/api/v1/campaigns/{campaign.pk}/exports", {"format": "attributes"}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "format"


def test_a_campaign_without_allowed_uses_takes_any_stated_use(lab_client, lab, django_capture_on_commit_callbacks):
    data = scenario(lab, allowed_uses=[])
    response = _request(lab_client, data.campaign, django_capture_on_commit_callbacks, format="trl_preference",
                        use="anything")
    assert response.status_code == 202
    card = Export.objects.get(pk=response.json()["id"]).card
    assert "Allowed uses: not restricted by the campaign." in card and "Intended use of this export: anything" in card


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_downloads_stream_the_files_and_the_card(lab_client, data, django_capture_on_commit_callbacks, file_format):
    export_id = _request(lab_client, data.campaign, django_capture_on_commit_callbacks, format="trl_preference",
                         file_format=file_format, test_fraction=0.3).json()["id"]
    export = Export.objects.get(pk=export_id)
    url = f"/api/v1/exports/{export_id}/download"
    train = lab_client.get(url)
    assert train.status_code == 200 and train.streaming  # a FileResponse, not a body in memory
    content = _body(train)
    assert hashlib.sha256(content).hexdigest() == export.sha256_train == train["ETag"].strip('"')
    assert content == export_path(export).read_bytes()
    assert f"-export-{export_id}-train.{file_format}" in train["Content-Disposition"]
    test = _body(lab_client.get(url + "?part=test"))
    assert hashlib.sha256(test).hexdigest() == export.sha256_test
    card = lab_client.get(url + "?part=card")
    assert card.status_code == 200 and card.content.decode() == export.card
    assert hashlib.sha256(card.content).hexdigest() == export.sha256_card
    assert lab_client.get(url + "?part=everything").status_code == 400
    # A script that asks for anything still gets the file.
    assert lab_client.get(url, HTTP_ACCEPT="application/octet-stream").status_code == 200


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_bundle_is_a_dataset_datasets_loads_from_its_card(lab_client, data, django_capture_on_commit_callbacks,
                                                         tmp_path, file_format):
    export_id = _request(lab_client, data.campaign, django_capture_on_commit_callbacks, format="trl_conversational",
                         file_format=file_format, test_fraction=0.3).json()["id"]
    export = Export.objects.get(pk=export_id)
    response = lab_client.get(f"/api/v1/exports/{export_id}/download?bundle=zip")
    assert response.status_code == 200 and response.streaming and response["Content-Type"] == "application/zip"
    payload = _body(response)
    bundle = zipfile.ZipFile(io.BytesIO(payload))
    assert sorted(bundle.namelist()) == ["README.md", f"data/test.{file_format}", f"data/train.{file_format}"]
    assert hashlib.sha256(bundle.read(f"data/train.{file_format}")).hexdigest() == export.sha256_train
    assert bundle.read("README.md").decode() == export.card
    folder = tmp_path / "unzipped"
    bundle.extractall(folder)
    # No data_files given: the splits come from the card's YAML front matter.
    ds = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf-cache"))
    assert ds["train"].num_rows == export.rows_train and ds["test"].num_rows == export.rows_test > 0
    assert {"prompt", "chosen", "rejected"} <= set(ds["train"].column_names)
    # The same export bundles to the same bytes.
    assert _body(lab_client.get(f"/api/v1/exports/{export_id}/download?bundle=zip")) == payload


def test_download_waits_until_the_export_is_done(lab_client, data):
    # Requested outside the capture: the job has not run.
    export_id = lab_client.post(f"/api/v1/campaigns/{data.campaign.pk}/exports", {"format": "ranking"},
                                format="json").json()["id"]
    status = lab_client.get(f"/api/v1/exports/{export_id}/").json()
    assert status["state"] == "queued" and status["files"] is None and status["sha256"]["train"] is None
    response = lab_client.get(f"/api/v1/exports/{export_id}/download")
    assert response.status_code == 409 and "queued" in response.json()["errors"][0]["message"]


def test_a_failed_export_says_why(lab_client, data, django_capture_on_commit_callbacks):
    from exports import services

    export = services.export_request(campaign=data.campaign, user=None, format="trl_preference", use="research")
    data.campaign.allowed_uses = ["commercial-training"]
    data.campaign.save(update_fields=["allowed_uses"])
    services.export_build(export_id=export.pk)
    status = lab_client.get(f"/api/v1/exports/{export.pk}/").json()
    assert status["state"] == "failed" and "research" in status["error"]


def test_status_and_files_never_name_experts(lab_client, data, django_capture_on_commit_callbacks):
    export_id = _request(lab_client, data.campaign, django_capture_on_commit_callbacks,
                         format="judgments").json()["id"]
    texts = [lab_client.get(f"/api/v1/exports/{export_id}/").content,
             _body(lab_client.get(f"/api/v1/exports/{export_id}/download")),
             _body(lab_client.get(f"/api/v1/exports/{export_id}/download?bundle=zip"))]
    for expert in data.experts.values():
        for text in texts:
            assert expert.user.username.encode() not in text and expert.user.email.encode() not in text


def test_other_labs_get_404_everywhere(other_lab_client, lab_client, data, django_capture_on_commit_callbacks):
    export_id = _request(lab_client, data.campaign, django_capture_on_commit_callbacks,
                         format="trl_preference").json()["id"]
    campaign_url = f"/api/v1/campaigns/{data.campaign.pk}/exports"
    assert other_lab_client.post(campaign_url, {"format": "trl_preference"}, format="json").status_code == 404
    assert other_lab_client.get(campaign_url).status_code == 404
    for url in (f"/api/v1/exports/{export_id}/", f"/api/v1/exports/{export_id}/download",
                f"/api/v1/exports/{export_id}/download?bundle=zip"):
        assert other_lab_client.get(url).status_code == 404
    assert Export.objects.count() == 1


def test_experts_get_403_and_anonymous_callers_401(expert_client, api_client, lab_client, data,
                                                   django_capture_on_commit_callbacks):
    export_id = _request(lab_client, data.campaign, django_capture_on_commit_callbacks,
                         format="trl_preference").json()["id"]
    campaign_url = f"/api/v1/campaigns/{data.campaign.pk}/exports"
    for client, code in ((expert_client, 403), (api_client, 401)):
        assert client.post(campaign_url, {"format": "trl_preference"}, format="json").status_code == code
        assert client.get(campaign_url).status_code == code
        assert client.get(f"/api/v1/exports/{export_id}/").status_code == code
        assert client.get(f"/api/v1/exports/{export_id}/download").status_code == code


def test_moderators_see_exports_read_only_in_admin(client, lab_client, data, django_capture_on_commit_callbacks):
    export_id = _request(lab_client, data.campaign, django_capture_on_commit_callbacks,
                         format="trl_preference").json()["id"]
    admin_user = factories.UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    listing = client.get("/admin/exports/export/")
    assert listing.status_code == 200 and b"trl_preference" in listing.content
    detail = client.get(f"/admin/exports/export/{export_id}/change/")
    assert detail.status_code == 200 and b"Filters and options with defaults filled in" in detail.content
    assert client.get("/admin/exports/export/add/").status_code == 403
    assert client.post(f"/admin/exports/export/{export_id}/delete/", {"post": "yes"}).status_code == 403
    assert Export.objects.filter(pk=export_id).exists()
