"""Seeds the fault suite's own database; run as a script with that database's DATABASE_URL.

    python tests/faults/seed.py loop --name NAME --experts 4 --tasks 1500
    python tests/faults/seed.py export --name NAME --tasks 20000

``loop``: an open campaign (overlap 3, no gold, no stake) and vetted experts
with API tokens, as the expert loop needs them. ``export``: a lab member with
an API token and a campaign of many tasks, each with judgments, so an export
build takes long enough to be killed in the middle. Prints one JSON object
(ids and tokens) on the last line of stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datadao.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from annotations import roles, services  # noqa: E402
from annotations.models import Assignment, Expert, ExpertDomain, Judgment, Lab, Task  # noqa: E402

RATIONALE = "A is safer and more complete; B misses a contraindication."


def _users(prefix: str, n: int, role: str) -> list[User]:
    users = User.objects.bulk_create([User(username=f"{prefix}-{i}", password="!") for i in range(n)])
    group, _ = Group.objects.get_or_create(name=role)
    User.groups.through.objects.bulk_create([User.groups.through(user_id=u.pk, group_id=group.pk) for u in users])
    return users


def _tokens(users: list[User]) -> list[str]:
    tokens = Token.objects.bulk_create([Token(user=u, key=Token.generate_key()) for u in users])
    return [t.key for t in tokens]


def _rows(n: int, text_bytes: int):
    padding = " Renal function, interactions and follow-up are discussed at length." * (text_bytes // 70 + 1)
    for i in range(n):
        yield i + 1, {
            "external_id": f"t{i}",
            "prompt": f"Patient {i}: 58 years old, eGFR {20 + i % 60} mL/min, new type 2 diabetes. Start metformin?",
            "responses": [
                {"model": "model-a", "text": f"Check renal function first ({i}).{padding[:text_bytes]}"},
                {"model": "model-b", "text": f"Start 500 mg twice daily ({i}).{padding[:text_bytes]}"},
            ],
        }


def _campaign(name: str, tasks: int, text_bytes: int = 200):
    lab = Lab.objects.create(name=f"{name} lab", slug=f"{name}-lab")
    campaign = services.campaign_create(
        lab=lab, name=name, domain="medicine", overlap=3, gold_rate=0.0, rationale_min_length=20, min_stake=0,
    )
    services.task_import(campaign=campaign, rows=lambda: _rows(tasks, text_bytes))
    services.campaign_transition(campaign=campaign, action="open")
    return lab, campaign


def seed_loop(name: str, experts: int, tasks: int) -> dict:
    _, campaign = _campaign(name, tasks)
    users = _users(f"{name}-expert", experts, roles.EXPERT)
    rows = Expert.objects.bulk_create(
        [Expert(user=u, domains=["medicine"], credentials="faults", state=Expert.State.VETTED) for u in users])
    ExpertDomain.objects.bulk_create(
        [ExpertDomain(expert=e, domain="medicine", state=ExpertDomain.State.VETTED) for e in rows])
    return {"campaign": campaign.pk, "tokens": _tokens(users)}


def seed_export(name: str, tasks: int, raters: int = 3) -> dict:
    lab, campaign = _campaign(name, tasks, text_bytes=300)
    member = _users(f"{name}-lab", 1, roles.LAB)
    lab.members.add(*member)
    users = _users(f"{name}-expert", raters, roles.EXPERT)
    experts = Expert.objects.bulk_create(
        [Expert(user=u, domains=["medicine"], credentials="faults", state=Expert.State.VETTED) for u in users])
    # Set-based inserts: a few seconds of build to kill in, seeded in about a second.
    at = timezone.now() - timedelta(hours=1)
    assignment, judgment, task = Assignment._meta.db_table, Judgment._meta.db_table, Task._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {assignment} (state, display_order, leased_at, expires_at, finished_at, skip_reason,"
            " campaign_id, expert_id, task_id)"
            f" SELECT %s, '[0, 1]', %s, %s, %s, '', t.campaign_id, e.id, t.id FROM {task} t"
            f" CROSS JOIN unnest(%s::bigint[]) AS e(id) WHERE t.campaign_id = %s",
            [Assignment.State.SUBMITTED.value, at, at, at, [e.pk for e in experts], campaign.pk])
        cursor.execute(
            f"INSERT INTO {judgment} (ranks, ratings, rationale, flags, display_order, time_spent_ms, submitted_at,"
            " is_gold, voided, voided_reason, assignment_id, campaign_id, expert_id, task_id)"
            f" SELECT '[1, 2]', '{{}}', %s, '[]', '[0, 1]', 20000, %s, false, false, '', a.id, a.campaign_id,"
            f" a.expert_id, a.task_id FROM {assignment} a WHERE a.campaign_id = %s",
            [RATIONALE, at, campaign.pk])
    Task.objects.filter(campaign=campaign).update(filled=raters, judgment_count=raters, state=Task.State.COMPLETE)
    return {"campaign": campaign.pk, "token": _tokens(member)[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=["loop", "export"])
    parser.add_argument("--name", required=True)
    parser.add_argument("--experts", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=1500)
    args = parser.parse_args()
    if args.kind == "loop":
        result = seed_loop(args.name, args.experts, args.tasks)
    else:
        result = seed_export(args.name, args.tasks)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
