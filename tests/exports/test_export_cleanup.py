"""Exports leave no temporary files behind (a retry removes its predecessor's, the sweep old ones), a live
build is not built twice, a killed one is started again, and the zip bundle comes built from the job."""
from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.http import FileResponse
from django.utils import timezone

from exports import formats, services
from exports.models import Export
from tests.exports.export_data import build, scenario

pytest.importorskip("pyarrow")


@pytest.fixture(autouse=True)
def export_root(settings, tmp_path):
    settings.DATADAO_EXPORT_ROOT = str(tmp_path / "exports")
    return tmp_path / "exports"


@pytest.fixture
def data(lab):
    return scenario(lab)


def _killed_build(campaign, *, silent_for: float) -> tuple[Export, Path]:
    """An export whose worker died mid-build: running, heartbeat ``silent_for`` seconds old, half-written
    temporary files (data and bundle) in its folder."""
    export = services.export_request(campaign=campaign, user=None, format=formats.TRL_PREFERENCE)
    Export.objects.filter(pk=export.pk).update(
        state=Export.State.RUNNING, heartbeat_at=timezone.now() - timedelta(seconds=silent_for))
    folder = services.export_folder(export)
    folder.mkdir(parents=True)
    (folder / f".train.jsonl.{export.pk}-dead.tmp").write_text('{"half": ')
    (folder / f".bundle.zip.{export.pk}-dead.tmp").write_bytes(b"PK\x03\x04")
    return export, folder


def test_a_retry_removes_its_dead_predecessors_temporary_files(data):
    export, folder = _killed_build(data.campaign, silent_for=services.HEARTBEAT_STALE_S + 5)
    rebuilt = services.export_build(export_id=export.pk)
    assert rebuilt.state == Export.State.DONE
    assert sorted(p.name for p in folder.iterdir()) == ["bundle.zip", "train.jsonl"]


def test_a_second_delivery_of_a_live_build_leaves_it_alone(data):
    export, folder = _killed_build(data.campaign, silent_for=5)  # its heartbeat is fresh: the run is alive
    again = services.export_build(export_id=export.pk)
    assert again.state == Export.State.RUNNING
    assert len(list(folder.glob(".*.tmp"))) == 2 and not (folder / "train.jsonl").exists()


def test_the_sweep_removes_old_temporary_files_and_restarts_silent_builds(data):
    live, live_folder = _killed_build(data.campaign, silent_for=5)
    old = live_folder / ".test.jsonl.old.tmp"
    old.write_text("{}")
    hours_ago = time.time() - 2 * 3600
    os.utime(old, (hours_ago, hours_ago))
    killed, killed_folder = _killed_build(data.campaign, silent_for=services.HEARTBEAT_STALE_S + 5)

    result = services.exports_sweep()

    assert result == {"temporaries_removed": 1, "builds_queued": 1}
    # The old file went; the live build's files (written seconds ago) stay, and so does the build.
    assert not old.exists() and len(list(live_folder.glob(".*.tmp"))) == 2
    assert Export.objects.get(pk=live.pk).state == Export.State.RUNNING
    # The silent build was queued again (in-process Celery ran it) and left nothing behind.
    assert Export.objects.get(pk=killed.pk).state == Export.State.DONE
    assert sorted(p.name for p in killed_folder.iterdir()) == ["bundle.zip", "train.jsonl"]
    assert services.exports_sweep() == {"temporaries_removed": 0, "builds_queued": 0}


def test_the_job_builds_the_zip_and_the_download_serves_the_file(data, lab_client, monkeypatch):
    export = build(data.campaign, format=formats.TRL_PREFERENCE, test_fraction=0.3)
    path = services.bundle_path(export)
    assert path.is_file()

    def no_zipping_in_the_web_worker(*args, **kwargs):
        raise AssertionError("the download compressed a bundle")

    monkeypatch.setattr(services, "write_zip", no_zipping_in_the_web_worker)
    response = lab_client.get(f"/api/v1/exports/{export.pk}/download?bundle=zip")
    assert response.status_code == 200 and isinstance(response, FileResponse)
    assert response["Content-Type"] == "application/zip"
    assert b"".join(response.streaming_content) == path.read_bytes()


def test_an_export_without_a_bundle_gets_one_built_by_a_job(data, lab_client):
    export = build(data.campaign, format=formats.TRL_PREFERENCE)
    path = services.bundle_path(export)
    made_by_the_build = path.read_bytes()
    path.unlink()  # built before bundles came with the build
    response = lab_client.get(f"/api/v1/exports/{export.pk}/download?bundle=zip")
    assert response.status_code == 200 and b"".join(response.streaming_content) == made_by_the_build
