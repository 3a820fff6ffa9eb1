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
    from exports import services

    export = services.export_request(campaign=campaign, user=user, **params)
    return services.export_build(export_id=export.pk)


def export_path(export, part: str = "train"):
    from pathlib import Path

    from django.conf import settings

    return Path(settings.DATADAO_EXPORT_ROOT) / (export.train_file if part == "train" else export.test_file)


def read_jsonl(export, part: str = "train") -> list[dict]:
    import json

    return [json.loads(line) for line in export_path(export, part).read_text().splitlines()]


# (external_id, prompt, responses, consensus ranks, margin): K = 2 tasks whose lines are awkward to write
# byte for byte (escapes, non-ASCII, floats) or whose filters are awkward to decide (near-duplicates that
# only normalisation finds, ties, unusual rank vectors). Margins are set exactly, not rounded as
# ``consensus_for`` rounds them.
AWKWARD_TASKS = [
    ("plain", "Plain question?", ["Alpha answer.", "Beta answer."], [1, 2], 0.9),
    ("same-prompt", "Plain question?", ["zeta", "Eta"], [2, 1], 1.0),
    ("unicode", "Ünïcödé prompt — 日本語 😀", ["Réponse — ça va 😀", "答え\u2028next\u2029end"], [1, 2], 0.1),
    ("escapes", 'Quote " and back\\slash\tand\nnewline \x01 \x7f', ['He said "hi" \\n', "tab\there\r\nx\x1f\x08\x0c"],
     [2, 1], 0.5),
    ("margin-1e-05", "Tiny margin?", ["Xylophone", "yak"], [1, 2], 1e-05),
    ("margin-0.000123", "Small margin?", ["Kilo", "lima"], [1, 2], 0.000123),
    ("margin-0.0001", "Edge margin?", ["Mike", "november"], [1, 2], 0.0001),
    ("margin-0", "Zero margin?", ["Oscar", "papa"], [2, 1], 0.0),
    ("margin-6-decimals", "Six decimals?", ["Quebec", "romeo"], [1, 2], 0.123457),
    ("tie", "Tied?", ["Sierra", "tango"], [1, 1], 0.8),
    ("case-space-duplicate", "Duplicate?", ["Hello   World", "hello world"], [1, 2], 0.9),
    ("same-first-letter", "Duplicate?", ["Hello World", "help the world"], [1, 2], 0.9),
    ("ligature-duplicate", "Ligature?", ["\ufb01ne print", "fine print"], [1, 2], 0.9),
    ("strasse-duplicate", "Street?", ["Straße", "STRASSE"], [1, 2], 0.9),
    ("exact-duplicate", "Exact?", ["Same text.", "Same text."], [1, 2], 0.9),
    ("leading-space", "Space?", [" leading", "leading"], [2, 1], 0.9),
    ("empty-response", "Empty?", ["", "Something"], [1, 2], 0.9),
    ("chat", [{"role": "system", "content": 'Be "careful".'}, {"role": "user", "content": "Dose?\n😀"}],
     ["Uniform", "victor"], [1, 2], 0.7),
    ("odd-ranks", "Odd ranks?", ["Whiskey", "xray"], [1, 3], 0.9),
    ("low-margin", "Low margin?", ["Yankee", "zulu"], [1, 2], 0.3),
    ('external "id" ü\\', "External id?", ["Able", "baker"], [2, 1], 0.75),
    ("flagged-rater", "Excluded?", ["Charlie", "delta"], [1, 2], 0.9),
    ("voided-flagged-rater", "Voided?", ["Echo", "foxtrot"], [1, 2], 0.9),
]


def awkward_campaign(lab, *, agreement: float | None) -> Campaign:
    """A K = 2 campaign (min margin 0.6) of :data:`AWKWARD_TASKS`, model names that need escaping on
    one task, a flagged rater who judged ``flagged-rater`` (and ``voided-flagged-rater``, voided), and
    a quality report giving ``agreement`` (none at all for None)."""
    from annotations.models import Judgment, Response, TaskConsensus

    campaign = factories.open_campaign(lab=lab, consensus_min_margin=0.6)
    tasks = {}
    for external_id, prompt, texts, ranks, margin in AWKWARD_TASKS:
        task = factories.TaskFactory(campaign=campaign, external_id=external_id, prompt=prompt, responses=texts)
        factories.consensus_for(task, ranks, n_raters=5 if margin == 1.0 else 3)
        TaskConsensus.objects.filter(task=task).update(margin=margin)
        tasks[external_id] = task
    Response.objects.filter(task=tasks["unicode"], position=0).update(model_name='mödel "α"')
    Response.objects.filter(task=tasks["unicode"], position=1).update(model_name="model\\b\n")
    flagged = factories.ExpertFactory()
    factories.judgments_bulk([{"task": tasks[name], "expert": flagged, "ranks": [1, 2]}
                              for name in ("flagged-rater", "voided-flagged-rater")])
    Judgment.objects.filter(task=tasks["voided-flagged-rater"]).update(voided=True)
    RaterQuality.objects.create(
        campaign=campaign, expert=flagged, handle=rater_handle(campaign.pk, flagged.pk), reliability=0.8,
        flagged=True, flag_speed=True, computed_at=timezone.now(), version=1,
    )
    if agreement is not None:
        QualityReport.objects.create(
            campaign=campaign, version=1, computed_at=timezone.now(), fingerprint="a" * 64, n_judgments=2,
            n_tasks=len(AWKWARD_TASKS), n_raters=1, figures={"alpha_nominal": {"value": agreement}},
        )
    return campaign
