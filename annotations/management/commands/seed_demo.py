"""Seed demo data: a lab with an API token, two open campaigns, experts, a moderator."""
from __future__ import annotations

import random

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from annotations import demo_data, roles, services
from annotations.importing import iter_array
from annotations.models import Campaign, Domain, Expert, ExpertDomain, Lab
from rewards import services as reward_services

DEMO_PASSWORD = "demo-password-123"


class Command(BaseCommand):
    help = "Create demo users, a funded lab and open campaigns with realistic tasks (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--tasks", type=int, default=150, help="Tasks per campaign (two campaigns).")

    @transaction.atomic
    def handle(self, *args, tasks: int, **options):
        rng = random.Random(7)
        groups = {name: Group.objects.get_or_create(name=name)[0] for name in roles.ALL_ROLES}

        def user(username: str, *role_names: str, staff: bool = False) -> User:
            account, created = User.objects.get_or_create(username=username, defaults={"email": f"{username}@demo.test"})
            if created:
                account.set_password(DEMO_PASSWORD)
            account.is_staff = account.is_staff or staff
            account.save()
            for name in role_names:
                account.groups.add(groups[name])
            return account

        lab_user = user("lab", roles.LAB)
        lab, _ = Lab.objects.get_or_create(slug="acme-ai", defaults={"name": "Acme AI"})
        lab.members.add(lab_user)
        token, _ = Token.objects.get_or_create(user=lab_user)

        moderator = user("moderator", roles.MODERATOR, staff=True)
        token_unit = 10 ** settings.DATADAO_TOKEN_DECIMALS
        # The lab's deposit, credited by the moderator (the reference makes it idempotent).
        reward_services.lab_topup(lab=lab, amount=10_000 * token_unit, reference="demo-deposit-1", actor=moderator)
        demo_experts = []
        for index, (name, domain) in enumerate(
            [("dr_ada", Domain.MEDICINE), ("dr_basil", Domain.MEDICINE), ("coder_cy", Domain.CODE)]
        ):
            account = user(name, roles.EXPERT)
            expert, _ = Expert.objects.get_or_create(
                user=account,
                defaults={"domains": [domain], "credentials": "Demo expert", "state": Expert.State.VETTED},
            )
            ExpertDomain.objects.get_or_create(expert=expert, domain=domain, defaults={"state": ExpertDomain.State.VETTED})
            demo_experts.append(expert)
        for expert in demo_experts:
            # Each demo expert arrives with 100 tokens and bonds 50 of them.
            reward_services.expert_deposit(
                expert=expert, amount=100 * token_unit, reference="demo-deposit", actor=moderator,
            )
            reward_services.stake_bond(expert=expert, amount=50 * token_unit, client_key="demo-stake")

        specs = [
            ("Clinical prescribing safety", Domain.MEDICINE, demo_data.medicine_tasks,
             "Prefer the response a careful clinician would sign: correct dose, contraindications checked, safety-netting."),
            ("Code review: correctness first", Domain.CODE, demo_data.code_tasks,
             "Prefer code that is correct on edge cases, then clear, then fast. Explain the bug you found."),
        ]
        for name, domain, generator, guidelines in specs:
            campaign = Campaign.objects.filter(lab=lab, name=name).first()
            if campaign is None:
                campaign = services.campaign_create(
                    lab=lab, name=name, domain=domain, guidelines=guidelines, attribute_axes=["correctness", "safety"],
                    reward_per_judgment=2_000_000, rationale_min_length=15,
                )
            rows = list(generator(tasks, rng))
            services.task_import(campaign=campaign, rows=lambda rows=rows: iter_array(rows))
            reward_services.campaign_fund(
                campaign=campaign, amount=1_000 * token_unit, actor=lab_user, client_key="demo-funding",
            )
            if campaign.status != Campaign.Status.OPEN:
                services.campaign_transition(campaign=campaign, action="open")

        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write("  Lab 'acme-ai' holds 8,000 tokens; each campaign has 1,000 in escrow; experts bonded 50 each.")
        self.stdout.write(f"  Lab API token:  {token.key}   (user 'lab', lab 'acme-ai')")
        self.stdout.write("  Experts:        dr_ada, dr_basil (medicine), coder_cy (code)")
        self.stdout.write("  Moderator:      moderator (Django admin at /admin/)")
        self.stdout.write(f"  Password (all): {DEMO_PASSWORD}")
