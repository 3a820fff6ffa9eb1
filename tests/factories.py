"""Factories for every model, in one place."""
from __future__ import annotations

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
