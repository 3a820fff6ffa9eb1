"""Candidate generation job: responses for prompt-only tasks from a tiny local GPT-2, progress, cancel, failure."""
from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="generation needs torch (requirements-ml.txt)")
pytest.importorskip("transformers", reason="generation needs transformers (requirements-ml.txt)")
pytest.importorskip("tokenizers", reason="the test tokenizer is built with the tokenizers library")

from annotations.models import Response, Task  # noqa: E402
from datavalue import candidates  # noqa: E402
from datavalue import tasks as celery_tasks  # noqa: E402
from datavalue.models import GenerationJob  # noqa: E402
from tests import factories  # noqa: E402
from tests.ml import build_tiny_gpt2  # noqa: E402

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2_campaign"))


@pytest.fixture
def campaign(lab):
    return factories.open_campaign(lab=lab, responses_per_task=3)


def _prompt_only(campaign, n):
    return [Task.objects.create(campaign=campaign, external_id=f"p-{i}", prompt=f"the patient should take {i}",
                                target_overlap=campaign.overlap) for i in range(n)]


def test_generates_k_responses_per_prompt_only_task_with_records_and_is_idempotent(campaign, checkpoint):
    tasks = _prompt_only(campaign, 3)
    chat = Task.objects.create(campaign=campaign, external_id="chat", target_overlap=3,
                               prompt=[{"role": "user", "content": "dose of aspirin?"}])
    ready = factories.TaskFactory(campaign=campaign)  # already has its responses
    before = list(Response.objects.filter(task=ready).values_list("text", flat=True))

    job = candidates.campaign_generate_responses(campaign.pk, str(checkpoint), chunk_size=2, max_new_tokens=6, seed=3)

    assert job.state == "done" and job.progress_total == job.progress_done == 4
    for n, task in enumerate(tasks + [chat]):
        task.refresh_from_db()
        responses = list(Response.objects.filter(task=task).order_by("position"))
        assert [r.position for r in responses] == [0, 1, 2]
        assert all(r.model_name == f"generated:{checkpoint.name}" for r in responses)
        records = task.metadata["generated"]
        assert [r["position"] for r in records] == [0, 1, 2]
        assert {r["seed"] for r in records} == {3 + n}  # seed + index in the run, whatever the chunking
        assert all(1 <= r["new_tokens"] <= 6 for r in records)
    assert list(Response.objects.filter(task=ready).values_list("text", flat=True)) == before

    count = Response.objects.count()
    again = candidates.campaign_generate_responses(campaign.pk, str(checkpoint), max_new_tokens=6)
    assert again.state == "done" and again.progress_total == 0 and Response.objects.count() == count


def test_cancel_keeps_the_chunks_already_stored(campaign, checkpoint, monkeypatch):
    tasks = _prompt_only(campaign, 3)
    job = GenerationJob.objects.create(campaign=campaign, checkpoint_path=str(checkpoint))
    real = candidates.generate_responses

    def then_cancel(*args, **kwargs):
        result = real(*args, **kwargs)
        GenerationJob.objects.filter(pk=job.pk).update(cancel_requested=True)
        return result

    monkeypatch.setattr(candidates, "generate_responses", then_cancel)
    job = candidates.campaign_generate_responses(campaign.pk, str(checkpoint), job_id=job.pk, chunk_size=1,
                                                 max_new_tokens=4)
    assert job.state == "cancelled" and job.progress_done == 1 and job.progress_total == 3
    assert Response.objects.filter(task=tasks[0]).count() == 3
    assert not Response.objects.filter(task__in=tasks[1:]).exists()


def test_bad_checkpoint_fails_the_job_without_raising(campaign, tmp_path):
    _prompt_only(campaign, 1)
    job = GenerationJob.objects.create(campaign=campaign, checkpoint_path=str(tmp_path / "missing"))
    celery_tasks.campaign_generate_responses(campaign.pk, str(tmp_path / "missing"), job_id=job.pk)
    job.refresh_from_db()
    assert job.state == "failed" and "does not exist" in job.error
    assert not Response.objects.exists()
