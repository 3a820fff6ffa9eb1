"""Factories for every model, in one place."""
from __future__ import annotations

import datetime

import factory
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token

from annotations import roles
from annotations.models import Campaign, Domain, Expert, ExpertDomain, Lab, Response, Task


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password("correct-horse-battery")


def add_role(user: User, role: str) -> User:
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    if hasattr(user, "_datadao_roles"):
        del user._datadao_roles
    return user


class LabFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lab

    name = factory.Sequence(lambda n: f"Lab {n}")
    slug = factory.Sequence(lambda n: f"lab-{n}")


def lab_member(lab: Lab | None = None, **kwargs) -> User:
    lab = lab or LabFactory()
    user = UserFactory(**kwargs)
    add_role(user, roles.LAB)
    lab.members.add(user)
    return user


def api_token(user: User) -> str:
    return Token.objects.get_or_create(user=user)[0].key


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    lab = factory.SubFactory(LabFactory)
    name = factory.Sequence(lambda n: f"Campaign {n}")
    domain = Domain.MEDICINE
    guidelines = "Prefer the answer a careful clinician would give."
    responses_per_task = 2
    overlap = 3
    max_overlap = 5
    # A new campaign's default minimum stake is the platform's minimum bond (staking on); most tests are about
    # something else and rate without staking, so the factory turns the gate off. Staking tests set it.
    min_stake = 0


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task
        skip_postgeneration_save = True

    campaign = factory.SubFactory(CampaignFactory)
    external_id = factory.Sequence(lambda n: f"task-{n}")
    prompt = "What is the first-line treatment for uncomplicated hypertension?"
    target_overlap = factory.LazyAttribute(lambda t: t.campaign.overlap)

    @factory.post_generation
    def responses(task, create, extracted, **kwargs):
        texts = extracted or [f"Answer {i} to {task.external_id}" for i in range(task.campaign.responses_per_task)]
        for position, text in enumerate(texts):
            Response.objects.create(task=task, position=position, model_name=f"model-{position}", text=text)


class ExpertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Expert
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    domains = factory.LazyFunction(lambda: [Domain.MEDICINE])
    credentials = "MD, 10 years internal medicine"
    state = Expert.State.VETTED

    @factory.post_generation
    def vetted_in(expert, create, extracted, **kwargs):
        add_role(expert.user, roles.EXPERT)
        if expert.state == Expert.State.VETTED:
            for domain in extracted or expert.domains:
                ExpertDomain.objects.get_or_create(
                    expert=expert, domain=domain, defaults={"state": ExpertDomain.State.VETTED},
                )


# Experts, leases and judgments.


def wallet(seed: int | str) -> str:
    """A distinct, correctly checksummed (EIP-55) wallet address."""
    import hashlib

    from datadao.wallet import to_checksum_address

    return to_checksum_address("0x" + hashlib.sha1(str(seed).encode()).hexdigest())


class GoldTaskFactory(TaskFactory):
    """A honeypot: gold says the first uploaded response is best."""

    is_gold = True
    gold = factory.LazyAttribute(lambda t: [1] + [2] * (t.campaign.responses_per_task - 1))
    target_overlap = 32767


def open_campaign(**kwargs) -> Campaign:
    """An open campaign with no gold injection unless asked."""
    kwargs.setdefault("status", Campaign.Status.OPEN)
    kwargs.setdefault("gold_rate", 0.0)
    return CampaignFactory(**kwargs)


# Ledger, stakes and epochs.


def rewards_moderator(**kwargs) -> User:
    """A staff user in the moderator group: may top up labs and reverse transactions."""
    user = UserFactory(is_staff=True, **kwargs)
    return add_role(user, roles.MODERATOR)


def lab_deposit(lab: Lab, amount: int, reference: str | None = None):
    """Credit a lab through the real top-up service, as a moderator would."""
    import uuid

    from rewards import services

    return services.lab_topup(
        lab=lab, amount=amount, reference=reference or uuid.uuid4().hex, actor=rewards_moderator(),
    )


def expert_deposit(expert: Expert, amount: int):
    """Give an expert available tokens through the real deposit service, as a moderator would."""
    import uuid

    from rewards import services

    return services.expert_deposit(
        expert=expert, amount=amount, reference=uuid.uuid4().hex, actor=rewards_moderator(),
    )


def rated_judgment(*, task: Task, expert: Expert, ranks: list[int], submitted_at=None, voided: bool = False,
                   gold_correct: bool | None = None):
    """A submitted judgment (with its assignment) as the rating flow would leave it."""
    from django.utils import timezone

    from annotations.models import Assignment, Judgment

    at = submitted_at or timezone.now()
    order = list(range(len(ranks)))
    assignment = Assignment.objects.create(
        task=task, expert=expert, campaign=task.campaign, state=Assignment.State.SUBMITTED, display_order=order,
        leased_at=at, expires_at=at, finished_at=at,
    )
    return Judgment.objects.create(
        assignment=assignment, task=task, expert=expert, campaign=task.campaign, ranks=ranks, display_order=order,
        time_spent_ms=30_000, submitted_at=at, is_gold=task.is_gold, gold_correct=gold_correct, voided=voided,
    )


_ONE_WEEK = datetime.timedelta(days=7)


def _a_week_ago():
    from django.utils import timezone

    return timezone.now() - _ONE_WEEK


class EpochFactory(factory.django.DjangoModelFactory):
    """An epoch that ran for the past week (due for settlement)."""

    class Meta:
        model = "rewards.Epoch"

    campaign = factory.SubFactory(CampaignFactory)
    index = factory.Sequence(lambda n: n)
    starts_at = factory.LazyFunction(_a_week_ago)
    ends_at = factory.LazyAttribute(lambda e: e.starts_at + _ONE_WEEK)


# Quality: many tasks and judgments at once.


def tasks_bulk(campaign: Campaign, n: int, *, prefix: str = "bulk", words: int = 60, gold=None) -> list[Task]:
    """``n`` tasks of ``campaign`` with K responses of ``words`` words each, in bulk inserts.

    ``gold``: ranks per upload position to make them honeypots.
    """
    target = 32767 if gold is not None else campaign.overlap
    tasks = Task.objects.bulk_create([
        Task(campaign=campaign, external_id=f"{prefix}-{campaign.pk}-{i}", prompt=f"Question {i} " + "word " * 20,
             target_overlap=target, is_gold=gold is not None, gold=gold)
        for i in range(n)
    ])
    Response.objects.bulk_create([
        Response(task=task, position=p, model_name=f"model-{p}", text=" ".join([f"w{p}"] * words))
        for task in tasks for p in range(campaign.responses_per_task)
    ])
    return tasks


def judgments_bulk(rows: list[dict]) -> list:
    """Submitted judgments, with their assignments, in bulk; tasks' counts follow and full tasks become complete.

    Each row: ``task``, ``expert``, ``ranks`` and optionally ``strength``, ``display_order``,
    ``time_spent_ms``, ``rationale``, ``flags``, ``gold_correct``, ``submitted_at``. No hook is
    called: the quality job is the test's to run.
    """
    from collections import Counter

    from django.db.models import F
    from django.utils import timezone

    from annotations.models import Assignment, Judgment

    now = timezone.now()
    assignments = Assignment.objects.bulk_create([
        Assignment(task=r["task"], expert=r["expert"], campaign_id=r["task"].campaign_id,
                   state=Assignment.State.SUBMITTED, display_order=r.get("display_order") or list(range(len(r["ranks"]))),
                   leased_at=r.get("submitted_at", now), expires_at=r.get("submitted_at", now),
                   finished_at=r.get("submitted_at", now))
        for r in rows
    ])
    judgments = Judgment.objects.bulk_create([
        Judgment(assignment=a, task=r["task"], expert=r["expert"], campaign_id=r["task"].campaign_id,
                 ranks=r["ranks"], strength=r.get("strength"), display_order=a.display_order,
                 rationale=r.get("rationale", ""), flags=r.get("flags", []),
                 time_spent_ms=r.get("time_spent_ms", 30_000), submitted_at=r.get("submitted_at", now),
                 is_gold=r["task"].is_gold, gold_correct=r.get("gold_correct"))
        for a, r in zip(assignments, rows)
    ])
    for task_id, n in Counter(r["task"].pk for r in rows).items():
        Task.objects.filter(pk=task_id).update(judgment_count=F("judgment_count") + n, filled=F("filled") + n)
    Task.objects.filter(pk__in={r["task"].pk for r in rows}, state=Task.State.OPEN,
                        judgment_count__gte=F("target_overlap")).update(state=Task.State.COMPLETE)
    return judgments


# Exports.


def consensus_for(task: Task, ranks: list[int], *, margins: list[float] | None = None, margin: float = 0.9,
                  n_raters: int = 3, version: int = 1):
    """A stored consensus as the quality job writes it: ``pairs`` for positions ``i < j`` with ``p`` (weighted
    share saying i is better), ``margin`` = |2p - 1| and ``votes``; the task's margin is the smallest pair's.
    ``margins``: one per pair in ``(0, 1), (0, 2), ..., (1, 2), ...`` order; default ``margin`` for all."""
    from django.utils import timezone

    from annotations.models import TaskConsensus

    k = len(ranks)
    pairs = []
    index = 0
    for i in range(k):
        for j in range(i + 1, k):
            m = margins[index] if margins is not None else margin
            index += 1
            p = 0.5 if ranks[i] == ranks[j] else ((1 + m) / 2 if ranks[i] < ranks[j] else (1 - m) / 2)
            pairs.append({"i": i, "j": j, "p": round(p, 3), "margin": round(m, 3), "votes": n_raters})
    return TaskConsensus.objects.create(
        task=task, campaign=task.campaign, ranks=ranks, pairs=pairs, margin=min(p["margin"] for p in pairs),
        n_raters=n_raters, method="weighted_vote" if k == 2 else "bradley_terry", version=version,
        computed_at=timezone.now(),
    )
