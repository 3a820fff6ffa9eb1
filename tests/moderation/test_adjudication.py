"""The review queue: a moderator's own ranking becomes the adjudicated consensus and stays."""
from __future__ import annotations

import pytest

from annotations.models import AuditEvent, Task, TaskConsensus
from annotations.quality import services as quality_services
from annotations.services import ServiceError
from moderation import adjudication
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def moderator():
    return factories.rewards_moderator()


@pytest.fixture
def task_in_review():
    """A K=3 task whose five raters split, at maximum overlap, with the quality job's weak consensus stored."""
    campaign = factories.CampaignFactory(responses_per_task=3, overlap=3, max_overlap=5)
    task = factories.TaskFactory(campaign=campaign, target_overlap=5)
    experts = [factories.ExpertFactory() for _ in range(5)]
    votes = [[1, 2, 3], [3, 2, 1], [1, 3, 2], [2, 1, 3], [3, 1, 2]]
    factories.judgments_bulk([{"task": task, "expert": e, "ranks": r} for e, r in zip(experts, votes)])
    quality_services.task_consensus_update(task_id=task.pk)
    task.refresh_from_db()
    assert task.state == Task.State.REVIEW
    return task


def test_admin_action_stores_the_moderators_ranking_as_consensus(client, moderator, task_in_review):
    client.force_login(moderator)
    url = "/admin/annotations/taskawaitingreview/"
    assert task_in_review.external_id in client.get(url).content.decode()
    form = client.post(url, {"action": "adjudicate_with_ranking", "_selected_action": [task_in_review.pk]})
    assert form.status_code == 200 and f'name="rank_{task_in_review.pk}_2"' in form.content.decode()

    done = client.post(url, {"action": "adjudicate_with_ranking", "_selected_action": [task_in_review.pk],
                             "apply": "1", f"rank_{task_in_review.pk}_0": "2", f"rank_{task_in_review.pk}_1": "1",
                             f"rank_{task_in_review.pk}_2": "3", "note": "B is the only correct dose"})

    assert done.status_code == 302
    task_in_review.refresh_from_db()
    consensus = TaskConsensus.objects.get(task=task_in_review)
    assert task_in_review.state == Task.State.ADJUDICATED
    assert (consensus.method, consensus.ranks, consensus.margin, consensus.n_raters) == ("adjudicated", [2, 1, 3],
                                                                                        1.0, 5)
    event = AuditEvent.objects.get(action="task.adjudicate")
    assert event.actor == moderator and event.details["note"] == "B is the only correct dose"
    assert event.details["previous_consensus"]["method"] == "bradley_terry"
    assert task_in_review.external_id not in client.get(url).content.decode()  # out of the queue


def test_the_quality_jobs_never_overwrite_an_adjudicated_consensus(moderator, task_in_review):
    adjudication.task_adjudicate_ranking(task=task_in_review, moderator=moderator, ranks=[3, 1, 2])

    quality_services.task_consensus_update(task_id=task_in_review.pk)
    quality_services.campaign_quality_compute(campaign_id=task_in_review.campaign_id)

    consensus = TaskConsensus.objects.get(task=task_in_review)
    assert (consensus.method, consensus.ranks) == ("adjudicated", [3, 1, 2])
    assert Task.objects.get(pk=task_in_review.pk).state == Task.State.ADJUDICATED


def test_adjudicating_is_idempotent_and_then_final(moderator, task_in_review):
    first = adjudication.task_adjudicate_ranking(task=task_in_review, moderator=moderator, ranks=[1, 1, 3])
    again = adjudication.task_adjudicate_ranking(task=task_in_review, moderator=moderator, ranks=[1, 1, 3])
    assert first.pk == again.pk and again.ranks == [1, 1, 3]
    assert [p["margin"] for p in again.pairs] == [0.0, 1.0, 1.0]  # a tie is an even split
    with pytest.raises(ServiceError) as exc:
        adjudication.task_adjudicate_ranking(task=task_in_review, moderator=moderator, ranks=[3, 2, 1])
    assert exc.value.status == 409
    assert AuditEvent.objects.filter(action="task.adjudicate").count() == 1


@pytest.mark.parametrize("ranks", [[1, 2], [0, 1, 2], [1, 2, 4], ["a", 1, 2]])
def test_a_ranking_must_rank_every_response(moderator, task_in_review, ranks):
    with pytest.raises(ServiceError) as exc:
        adjudication.task_adjudicate_ranking(task=task_in_review, moderator=moderator, ranks=ranks)
    assert exc.value.field == "ranks"
    assert Task.objects.get(pk=task_in_review.pk).state == Task.State.REVIEW


def test_only_tasks_in_review_and_only_moderators(moderator, task_in_review):
    open_task = factories.TaskFactory()
    with pytest.raises(ServiceError) as exc:
        adjudication.task_adjudicate_ranking(task=open_task, moderator=moderator, ranks=[1, 2])
    assert exc.value.status == 409
    expert = factories.ExpertFactory()
    with pytest.raises(ServiceError) as exc:
        adjudication.task_adjudicate_ranking(task=task_in_review, moderator=expert.user, ranks=[1, 2, 3])
    assert exc.value.status == 403


def test_a_bad_ranking_in_the_admin_form_is_shown_again(client, moderator, task_in_review):
    client.force_login(moderator)
    response = client.post("/admin/annotations/taskawaitingreview/", {
        "action": "adjudicate_with_ranking", "_selected_action": [task_in_review.pk], "apply": "1",
        f"rank_{task_in_review.pk}_0": "1"})
    assert response.status_code == 200 and b"rank all 3 responses" in response.content
    assert Task.objects.get(pk=task_in_review.pk).state == Task.State.REVIEW
