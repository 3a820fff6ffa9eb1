"""Generation jobs through the API: a lab starts one for its prompt-only tasks, follows it, cancels it."""
from __future__ import annotations

import pytest

from annotations.models import Response, Task
from datavalue import candidates
from datavalue.models import GenerationJob
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(lab):
    return factories.open_campaign(lab=lab, responses_per_task=2)


@pytest.fixture
def roots(settings, tmp_path):
    """A registered checkpoint name and a checkpoint folder; the checkpoints are stand-ins (config.json only)
    unless a test builds a real one."""
    root = tmp_path / "checkpoints"
    fake = root / "fake"
    fake.mkdir(parents=True)
    (fake / "config.json").write_text("{}")
    settings.DATADAO_CHECKPOINT_ROOTS = [str(root)]
    settings.DATADAO_CHECKPOINTS = {"fake": str(fake)}
    return root


def _prompt_only(campaign, n=2):
    return [Task.objects.create(campaign=campaign, external_id=f"p-{i}", prompt=f"the patient should take {i}",
                                target_overlap=campaign.overlap) for i in range(n)]


def _start(client, campaign, **body):
    return client.post(f"/api/v1/campaigns/{campaign.pk}/generation-jobs", body, format="json")


def test_a_lab_generates_responses_for_its_prompt_only_tasks(campaign, lab_client, roots, settings,
                                                             django_capture_on_commit_callbacks):
    pytest.importorskip("torch", reason="generation needs torch (requirements-ml.txt)")
    pytest.importorskip("transformers", reason="generation needs transformers (requirements-ml.txt)")
    pytest.importorskip("tokenizers", reason="the test tokenizer is built with the tokenizers library")
    from tests.ml import build_tiny_gpt2

    checkpoint = build_tiny_gpt2(roots / "tiny")
    tasks = _prompt_only(campaign)

    with django_capture_on_commit_callbacks(execute=True):
        response = _start(lab_client, campaign, checkpoint=str(checkpoint), max_new_tokens=5, seed=3)

    assert response.status_code == 202, response.json()
    job_id = response.json()["id"]
    detail = lab_client.get(f"/api/v1/generation-jobs/{job_id}/").json()
    assert detail["state"] == "done" and detail["progress"] == {"done": 2, "total": 2, "unit": "prompts"}
    assert detail["params"]["max_new_tokens"] == 5 and detail["checkpoint"] == str(checkpoint)
    for task in tasks:
        assert Response.objects.filter(task=task).count() == 2
        task.refresh_from_db()
        assert {r["seed"] for r in task.metadata["generated"]} <= {3, 4}
    listed = lab_client.get(f"/api/v1/campaigns/{campaign.pk}/generation-jobs").json()
    assert [j["id"] for j in listed["results"]] == [job_id]
    # Every task has its responses now: nothing to generate.
    again = _start(lab_client, campaign, checkpoint=str(checkpoint))
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "tasks"


def test_only_checkpoints_the_server_offers_can_be_named(campaign, lab_client, roots, tmp_path):
    _prompt_only(campaign)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    for name in ("gpt2", str(outside), "../fake", str(roots / "missing")):
        response = _start(lab_client, campaign, checkpoint=name)
        assert response.status_code == 400 and response.json()["errors"][0]["field"] == "checkpoint", name
    assert not GenerationJob.objects.exists()


def test_one_job_at_a_time_and_a_retry_returns_it(campaign, lab_client, roots):
    _prompt_only(campaign)
    first = _start(lab_client, campaign, checkpoint="fake")  # on_commit not run: the job stays queued
    retry = _start(lab_client, campaign, checkpoint="fake")
    other = roots / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    clash = _start(lab_client, campaign, checkpoint=str(other))

    assert first.status_code == 202 and first.json()["state"] == "queued"
    assert retry.status_code == 200 and retry.json()["id"] == first.json()["id"]
    assert clash.status_code == 409
    assert GenerationJob.objects.count() == 1


def test_cancel_a_queued_job_at_once_a_running_one_at_its_next_check_and_not_a_finished_one(
        campaign, lab_client, roots):
    _prompt_only(campaign)
    queued = lab_client.post(f"/api/v1/generation-jobs/{_start(lab_client, campaign, checkpoint='fake').json()['id']}"
                             "/cancel")
    assert queued.status_code == 200 and queued.json()["state"] == "cancelled"
    # The worker picking a cancelled job up leaves it cancelled.
    job = GenerationJob.objects.get()
    assert candidates.campaign_generate_responses(campaign.pk, job.checkpoint_path, job_id=job.pk).state == "cancelled"

    running = GenerationJob.objects.create(campaign=campaign, checkpoint="fake", checkpoint_path=job.checkpoint_path,
                                           state=GenerationJob.State.RUNNING)
    response = lab_client.post(f"/api/v1/generation-jobs/{running.pk}/cancel")
    assert response.status_code == 200 and response.json()["state"] == "running"
    assert response.json()["cancel_requested"] is True

    GenerationJob.objects.filter(pk=running.pk).update(state=GenerationJob.State.DONE)
    finished = lab_client.post(f"/api/v1/generation-jobs/{running.pk}/cancel")
    assert finished.status_code == 409


def test_another_lab_sees_nothing_and_errors_hide_server_paths(campaign, lab_client, other_lab_client, roots):
    job = GenerationJob.objects.create(campaign=campaign, checkpoint="fake", checkpoint_path=str(roots / "fake"),
                                       state=GenerationJob.State.FAILED,
                                       error=f"cannot load model weights from {roots / 'fake'}: truncated")
    assert other_lab_client.get(f"/api/v1/generation-jobs/{job.pk}/").status_code == 404
    assert other_lab_client.post(f"/api/v1/generation-jobs/{job.pk}/cancel").status_code == 404
    assert other_lab_client.get(f"/api/v1/campaigns/{campaign.pk}/generation-jobs").status_code == 404
    error = lab_client.get(f"/api/v1/generation-jobs/{job.pk}/").json()["error"]
    assert error == "cannot load model weights from fake: truncated"


def test_admin_lists_jobs_with_state_and_progress(client, campaign, roots):
    GenerationJob.objects.create(campaign=campaign, checkpoint="fake", checkpoint_path="/x", state="running",
                                 progress_done=3, progress_total=8)
    client.force_login(factories.rewards_moderator())
    page = client.get("/admin/datavalue/generationjob/?state__exact=running")
    assert page.status_code == 200
    assert b"3 / 8" in page.content and campaign.name.encode() in page.content
    assert client.get("/admin/datavalue/generationjob/add/").status_code == 403
