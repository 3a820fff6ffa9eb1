"""Seed demo data: a lab with an API token, two open campaigns, experts, a moderator, and a past epoch.

It lives in rewards because the demo funds the lab, bonds stakes and settles an
epoch (rewards sits above annotations). The demo shows the whole cycle: enough
experts for the overlap, gold tasks (so the qualification test and slashing
exist), a week of past work whose tasks completed with a consensus, campaign
quality computed from it, and that week settled, so wallets show earnings and a
Merkle claim. Running it again changes nothing.
"""
from __future__ import annotations

import random
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone
from rest_framework.authtoken.models import Token

from annotations import assignment, demo_data, judgments, roles, services
from annotations.importing import iter_array
from annotations.models import Campaign, Domain, Expert, ExpertDomain, Judgment, Lab, Response
from annotations.quality import services as quality_services
from annotations.ranking import slot_letters
from rewards import services as reward_services
from rewards import settlement
from rewards.models import Epoch

DEMO_PASSWORD = "demo-password-123"


class Command(BaseCommand):
    help = "Create demo users, a funded lab and open campaigns with realistic tasks (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--tasks", type=int, default=60, help="Tasks per campaign (two campaigns).")

    def handle(self, *args, tasks: int, **options):
        with transaction.atomic():
            campaigns, token = self._seed(tasks)
        # Past work commits in its own transactions, so each completed task's consensus runs on commit.
        for campaign in campaigns:
            self._past_week(campaign)

        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write("  Lab 'acme-ai' holds 8,000 tokens; each campaign was funded with 1,000; experts bonded 50 each.")
        self.stdout.write("  Last week's work is settled: see an expert's wallet and the lab's quality page.")
        self.stdout.write(f"  Lab API token:  {token.key}   (user 'lab', lab 'acme-ai')")
        self.stdout.write(f"  Experts:        {', '.join(n for n, _ in EXPERTS)}")
        self.stdout.write("  Applicant:      newcomer (approved; takes the Medicine and Code tests)")
        self.stdout.write("  Moderator:      moderator (Django admin at /admin/)")
        self.stdout.write(f"  Password (all): {DEMO_PASSWORD}")

    def _seed(self, tasks: int):
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
        for index, (name, domain) in enumerate(EXPERTS):
            account = user(name, roles.EXPERT)
            expert, _ = Expert.objects.get_or_create(
                user=account,
                defaults={"domains": [domain], "credentials": "Demo expert", "state": Expert.State.VETTED,
                          "wallet_address": f"0x{index + 1:040d}"},  # digits only: valid under EIP-55
            )
            ExpertDomain.objects.get_or_create(expert=expert, domain=domain, defaults={"state": ExpertDomain.State.VETTED})
            demo_experts.append(expert)
        for expert in demo_experts:
            # Each demo expert arrives with 100 tokens and bonds 50 of them.
            reward_services.expert_deposit(
                expert=expert, amount=100 * token_unit, reference="demo-deposit", actor=moderator,
            )
            reward_services.stake_bond(expert=expert, amount=50 * token_unit, client_key="demo-stake")
        # An approved applicant who still has to pass a test in each domain.
        newcomer = user("newcomer", roles.EXPERT)
        applicant, _ = Expert.objects.get_or_create(
            user=newcomer, defaults={"domains": [Domain.MEDICINE, Domain.CODE], "credentials": "GP and hobby programmer",
                                     "state": Expert.State.QUALIFYING, "wallet_address": f"0x{99:040d}"},
        )
        for domain in applicant.domains:
            ExpertDomain.objects.get_or_create(expert=applicant, domain=domain)

        specs = [
            ("Clinical prescribing safety", Domain.MEDICINE, demo_data.medicine_tasks,
             "Prefer the response a careful clinician would sign: correct dose, contraindications checked, safety-netting."),
            ("Code review: correctness first", Domain.CODE, demo_data.code_tasks,
             "Prefer code that is correct on edge cases, then clear, then fast. Explain the bug you found."),
        ]
        campaigns = []
        for name, domain, generator, guidelines in specs:
            campaign = Campaign.objects.filter(lab=lab, name=name).first()
            if campaign is None:
                campaign = services.campaign_create(
                    lab=lab, name=name, domain=domain, guidelines=guidelines, attribute_axes=["correctness", "safety"],
                    reward_per_judgment=2_000_000, rationale_min_length=15, gold_rate=0.1,
                )
            rows = demo_data.with_gold(list(generator(tasks, rng)), every=GOLD_EVERY)
            services.task_import(campaign=campaign, rows=lambda rows=rows: iter_array(rows))
            reward_services.campaign_fund(
                campaign=campaign, amount=1_000 * token_unit, actor=lab_user, client_key="demo-funding",
            )
            if campaign.status != Campaign.Status.OPEN:
                services.campaign_transition(campaign=campaign, action="open")
                # The campaign ran for the past week: that week is the epoch the seed settles.
                Campaign.objects.filter(pk=campaign.pk).update(opened_at=timezone.now() - PAST_WEEK - timedelta(hours=1))
                campaign.refresh_from_db()
            campaigns.append(campaign)
        return campaigns, token

    def _past_week(self, campaign: Campaign) -> None:
        """The experts' work of last week, through the real services; then quality and settlement."""
        if Judgment.objects.filter(campaign=campaign).exists():
            return
        rng = random.Random(campaign.pk)
        start = campaign.opened_at + timedelta(minutes=5)
        raters = [e for e in Expert.objects.filter(state=Expert.State.VETTED).order_by("pk") if campaign.domain in e.domains]
        careful = {r.task_id: r.position for r in Response.objects.filter(task__campaign=campaign)
                   if r.model_name == (r.task.metadata or {}).get("careful_model")}
        for index in range(PAST_TASKS * campaign.overlap):
            expert = raters[index % len(raters)]
            now = start + timedelta(minutes=7 * index)
            # One candidate at a time: the simulated team finishes tasks in order rather than spreading out.
            with transaction.atomic(), override_settings(DATADAO_ASSIGN_WINDOW=1):
                lease = assignment.assignment_next(expert=expert, campaign=campaign, rng=rng, now=now)
                if lease is None:
                    continue
                # Each expert agrees with the careful answer most of the time; the last one is sloppier.
                accuracy = 0.8 if expert == raters[-1] else 0.97
                best = careful.get(lease.task_id, 0)
                if rng.random() > accuracy:
                    best = 1 - best
                letters = slot_letters(2)
                winner = letters[lease.display_order.index(best)]
                strength = rng.choice([1, 2, 3]) * (-1 if winner == "A" else 1)
                ratings = {axis: {x: (rng.choice([4, 5]) if x == winner else rng.choice([1, 2, 3])) for x in letters}
                           for axis in campaign.attribute_axes}
                judgments.judgment_submit(
                    expert=expert, assignment_id=lease.pk, now=now + timedelta(minutes=3),
                    data=judgments.JudgmentInput(
                        ranking=[winner, "B" if winner == "A" else "A"], strength=strength, ratings=ratings,
                        rationale=demo_rationale(rng, winner),
                    ),
                )
        quality_services.campaign_quality_compute(campaign_id=campaign.pk)
        for epoch_id in settlement.campaign_epochs_roll(campaign=campaign):
            settlement.epoch_settle(epoch_id=epoch_id)
        if not Epoch.objects.filter(campaign=campaign, state=Epoch.State.SETTLED).exists():
            self.stderr.write(f"warning: no epoch of {campaign.name!r} settled")


EXPERTS = [
    ("dr_ada", Domain.MEDICINE), ("dr_basil", Domain.MEDICINE), ("dr_chen", Domain.MEDICINE), ("dr_dara", Domain.MEDICINE),
    ("coder_cy", Domain.CODE), ("coder_eve", Domain.CODE), ("coder_finn", Domain.CODE), ("coder_gus", Domain.CODE),
]
GOLD_EVERY = 6  # one task in six has a known answer: enough for a qualification test per domain
PAST_TASKS = 30  # tasks per campaign completed last week (each by `overlap` experts)
PAST_WEEK = timedelta(days=settings.DATADAO_EPOCH_DAYS)
# Rationales are put together from three parts, so two experts rarely write the same sentence: the
# quality job holds the pay of an expert whose rationales copy another's (copied_rationale).
RATIONALE_OPENINGS = [
    "{x} is the one I would sign.", "I prefer {x}.", "{x} wins here.", "Going with {x}.",
    "{x} is clearly better.", "{x}, without much doubt.", "My pick is {x}.",
]
RATIONALE_REASONS = [
    "It names the contraindication and gives a dose that fits this patient",
    "It is correct on the edge case where the other would fail in practice",
    "It explains why instead of only stating a recommendation",
    "The other answer skips the key safety check",
    "It is safer and just as complete",
    "Its steps are in the right order and nothing is missing",
    "It handles the failure path the other one ignores",
]
RATIONALE_CLOSINGS = [
    "the rest is style.", "that decides it for me.", "small wording issues aside.",
    "I would still tighten the wording.", "both are readable.", "the other needs a second pass.",
]


def demo_rationale(rng: random.Random, winner: str) -> str:
    return (f"{rng.choice(RATIONALE_OPENINGS).format(x=winner)} {rng.choice(RATIONALE_REASONS)}; "
            f"{rng.choice(RATIONALE_CLOSINGS)}")
