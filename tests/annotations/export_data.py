"""A small campaign with one task for each thing an export filter decides, for the export tests."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from django.utils import timezone

from annotations.handles import rater_handle
from annotations.models import Campaign, Expert, QualityReport, RaterQuality, Task
from tests import factories

# datasets must never reach a hub from a test.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

AXES = ["correctness", "helpfulness"]


@dataclass
class Scenario:
    campaign: Campaign
    experts: dict[str, Expert]
    tasks: dict[str, Task]
    expected_pairs: list[tuple[str, str, str]] = field(default_factory=list)  # (external_id, chosen, rejected)


def _judge(rows: list, task: Task, experts: list[Expert], ranks: list[int], *, ratings=None, rationale="Because "
           "the first answer names the right drug and dose."):
    for expert in experts:
        rows.append({"task": task, "expert": expert, "ranks": ranks, "strength": -2 if ranks[0] < ranks[1] else 2,
                     "rationale": rationale, "ratings": ratings})


def scenario(lab, *, licence: str = "CC-BY-4.0", allowed_uses: list[str] | None = None) -> Scenario:
    """K = 2 campaign (min margin 0.6) of eleven tasks: six clear ones (the flagged rater judged ``clear-5``),
    one below the margin, one tie, one with near-identical responses, one chat prompt, one without a
    consensus yet, plus a gold task. Three raters: ``good`` and ``fair`` (reliabilities 0.9 and 0.6) and
    ``flagged``. A quality report (v2) gives alpha 0.71."""
    campaign = factories.open_campaign(
        lab=lab, attribute_axes=AXES, licence=licence,
        allowed_uses=["research", "commercial-training"] if allowed_uses is None else allowed_uses,
        consensus_min_margin=0.6,
    )
    experts = {name: factories.ExpertFactory() for name in ("good", "fair", "flagged")}
    both = [experts["good"], experts["fair"]]
    tasks: dict[str, Task] = {}
    expected: list[tuple[str, str, str]] = []
    rows: list[dict] = []

    def task(external_id: str, texts: list[str], prompt=None, **kwargs) -> Task:
        made = factories.TaskFactory(campaign=campaign, external_id=external_id, responses=texts,
                                     prompt=prompt or f"Question {external_id}: what is the right dose?", **kwargs)
        tasks[external_id] = made
        return made

    for n in range(6):
        first_better = n % 2 == 0
        ranks = [1, 2] if first_better else [2, 1]
        made = task(f"clear-{n}", [f"Right answer {n}: 5 mg daily.", f"Wrong answer {n}: 50 mg hourly."]
                    if first_better else [f"Wrong answer {n}: 50 mg hourly.", f"Right answer {n}: 5 mg daily."])
        factories.consensus_for(made, ranks, margin=0.9, version=2)
        _judge(rows, made, both + ([experts["flagged"]] if n == 5 else []), ranks,
               ratings={"correctness": [5, 1] if first_better else [1, 5], "helpfulness": [4, 2]})
        if n != 5:
            expected.append((made.external_id, f"Right answer {n}: 5 mg daily.", f"Wrong answer {n}: 50 mg hourly."))

    low = task("low-margin", ["Maybe A.", "Maybe B."])
    factories.consensus_for(low, [1, 2], margin=0.3, version=2)
    _judge(rows, low, both, [1, 2], ratings={"correctness": [3, 3], "helpfulness": [3, 2]})

    tie = task("tie", ["Equally good one.", "Equally good two."])
    factories.consensus_for(tie, [1, 1], margin=0.8, version=2)
    _judge(rows, tie, both, [1, 1], ratings={"correctness": [4, 4], "helpfulness": [4, 4]})

    dup = task("near-duplicate", ["Paris is the capital of France.", "paris  is the capital of FRANCE."])
    factories.consensus_for(dup, [1, 2], margin=0.9, version=2)
    _judge(rows, dup, both, [1, 2], ratings={"correctness": [5, 5], "helpfulness": [5, 4]})

    chat = task("chat", ["Use the lower dose.", "Use the higher dose."], prompt=[
        {"role": "system", "content": "You are a careful clinician."},
        {"role": "user", "content": "Which dose for an elderly patient?"},
    ])
    factories.consensus_for(chat, [1, 2], margin=1.0, version=1)
    _judge(rows, chat, both, [1, 2], ratings={"correctness": [5, 2], "helpfulness": [5, 3]})
    expected.append(("chat", "Use the lower dose.", "Use the higher dose."))

    pending = task("no-consensus", ["Pending one.", "Pending two."])
    _judge(rows, pending, [experts["good"]], [1, 2], ratings={"correctness": [4, 2], "helpfulness": [4, 2]})

    gold = factories.GoldTaskFactory(campaign=campaign, external_id="gold-0", responses=["Gold right.", "Gold wrong."],
                                     prompt="Gold question: which is right?")
    tasks["gold-0"] = gold

    factories.judgments_bulk([{k: v for k, v in r.items() if k != "ratings"} for r in rows])
    # judgments_bulk has no ratings argument; set them per judgment afterwards.
    from annotations.models import Judgment

    for r in rows:
        Judgment.objects.filter(task=r["task"], expert=r["expert"]).update(ratings=r["ratings"])

    now = timezone.now()
    for name, reliability, flagged in (("good", 0.9, False), ("fair", 0.6, False), ("flagged", 0.8, True)):
        RaterQuality.objects.create(
            campaign=campaign, expert=experts[name], handle=rater_handle(campaign.pk, experts[name].pk),
            reliability=reliability, flagged=flagged, flag_speed=flagged, computed_at=now, version=2,
        )
    QualityReport.objects.create(
        campaign=campaign, version=2, computed_at=now, fingerprint="f" * 64, n_judgments=len(rows), n_tasks=10,
        n_raters=3, figures={"alpha_nominal": {"value": 0.71, "low": 0.6, "high": 0.8},
                             "alpha_ordinal": {"value": 0.65, "low": 0.5, "high": 0.75}, "raw_agreement": 0.88},
    )
    return Scenario(campaign=campaign, experts=experts, tasks=tasks, expected_pairs=expected)


def build(campaign: Campaign, user=None, **params):
    """Request an export through the service and build it at once (as the job would); returns it fresh."""
    from annotations.exports import services

    export = services.export_request(campaign=campaign, user=user, **params)
    return services.export_build(export_id=export.pk)


def export_path(export, part: str = "train"):
    from pathlib import Path

    from django.conf import settings

    return Path(settings.DATADAO_EXPORT_ROOT) / (export.train_file if part == "train" else export.test_file)


def read_jsonl(export, part: str = "train") -> list[dict]:
    import json

    return [json.loads(line) for line in export_path(export, part).read_text().splitlines()]
