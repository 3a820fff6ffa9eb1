"""Every PostgreSQL fast path gives what its portable twin gives, both run against PostgreSQL.

Each ``connection.vendor == "postgresql"`` branch tested here has a twin (the ORM, or portable SQL)
that SQLite runs. A case builds its data once, then makes the same call twice from that state, each
run in a savepoint rolled back afterwards: once as the code runs on PostgreSQL, once inside
``portable(module)``, where the module under test takes its twin. What a user would notice must
agree: the lease handed out, the judgment recorded, the rows written, balances, return values and
the errors raised for bad input. Ids drawn from sequences differ between the runs and are left out.

``portable`` swaps only the module's own ``connection`` name for a view reporting another vendor.
Setting ``vendor`` on the shared connection instead would also switch Django's SQL compiler to its
SQLite forms (the ``as_sqlite`` methods, e.g. of JSON key lookups), which fail against PostgreSQL: it
would test Django, not the twin. Why each fast path is kept: docs/decisions/.
"""
from __future__ import annotations

import contextlib
import dataclasses
import random
from array import array
from datetime import datetime, timedelta, timezone as dt_timezone
from types import ModuleType

import numpy as np
import pytest
from django.db import IntegrityError, connection, transaction
from django.test import TestCase

from annotations import judgments, leases, services
from annotations.importing import TaskRow
from annotations.models import Assignment, Campaign, Judgment, QualificationAttempt, QualificationItem, Response, Task
from annotations.models import AuditEvent, RaterQuality, TaskConsensus
from annotations.quality import compute, loading, writing
from datadao import rows
from rewards import bulk, ledger
from rewards.models import Account, EpochClaim, EpochReward, LedgerEntry, LedgerTransaction
from tests import factories

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="runs each PostgreSQL fast path beside its portable twin; needs PostgreSQL (set DATABASE_URL)",
    ),
]

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=dt_timezone.utc)
RATIONALE = "A checks renal function before dosing; B does not."


class _Elsewhere:
    """The default connection as a module sees it inside ``portable``: all of it, but another vendor."""

    vendor = "sqlite"

    def __getattr__(self, name):
        return getattr(connection, name)


@contextlib.contextmanager
def portable(module: ModuleType):
    """Within the block, ``module``'s vendor checks see a database other than PostgreSQL."""
    real = module.connection
    module.connection = _Elsewhere()
    try:
        yield
    finally:
        module.connection = real


def twins(module: ModuleType, call, observe=lambda value: value):
    """``(fast, portable)``: for each path, the error ``call()`` raised (or None), what ``observe`` then read
    (given the return value, None after an error) and how many callbacks waited for the commit."""
    seen = []
    for path in (contextlib.nullcontext, lambda: portable(module)):
        savepoint = transaction.savepoint()
        try:
            with TestCase.captureOnCommitCallbacks(execute=False) as queued:
                value, error = None, None
                try:
                    with path(), transaction.atomic():  # an error leaves the transaction usable for observe
                        value = call()
                except Exception as exc:  # noqa: BLE001 - the error is part of what is compared
                    error = (type(exc), str(exc), getattr(exc, "status", None), getattr(exc, "errors", None))
            seen.append({"error": error, "observed": observe(value), "queued": len(queued)})
        finally:
            transaction.savepoint_rollback(savepoint)
    return seen[0], seen[1]


def fields(instance, *leave_out: str) -> dict:
    """Every stored column of ``instance`` but ``id`` and ``leave_out`` (ids a sequence draws)."""
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields
            if f.attname not in ("id", *leave_out)}


# annotations.leases: lease_claim

def _lease_seen(assignment, campaign):
    """What the expert and the task's count show after a claim: the lease returned and stored, the texts shown."""
    filled = dict(Task.objects.filter(campaign=campaign).values_list("external_id", "filled"))
    if assignment is None:
        return {"lease": None, "filled": filled}
    shown = leases.leased_task(assignment)
    stored = Assignment.objects.get(pk=assignment.pk)
    return {"lease": fields(assignment), "stored": fields(stored), "task": stored.task.external_id,
            "shown": (shown.prompt, shown.responses), "filled": filled}


@pytest.fixture
def crowded(settings):
    """An open campaign of ten tasks, part-filled, one full, one the expert rated; a draw window of four."""
    settings.DATADAO_ASSIGN_WINDOW = 4
    campaign = factories.open_campaign(overlap=3)
    tasks = [factories.TaskFactory(campaign=campaign, prompt=[{"role": "user", "content": f"Question {i}"}])
             for i in range(10)]
    for task, filled in zip(tasks, [2, 2, 1, 1, 1, 0, 0, 3, 2, 0]):
        Task.objects.filter(pk=task.pk).update(filled=filled)
    expert = factories.ExpertFactory()
    factories.rated_judgment(task=tasks[0], expert=expert, ranks=[1, 2])
    return campaign, expert


def _claim_twins(campaign, expert, seed, *, gold=False, module=leases):
    return twins(module, lambda: leases.lease_claim(campaign, expert, gold=gold, now=NOW, rng=random.Random(seed)),
                 lambda lease: _lease_seen(lease, campaign))


def test_claim_hands_out_the_same_lease_for_the_same_draw(crowded):
    handed_out = set()
    for seed in range(8):
        fast, twin = _claim_twins(*crowded, seed)
        assert fast == twin and fast["error"] is None
        handed_out.add(fast["observed"]["task"])
    assert len(handed_out) > 1  # the seeds draw different tasks from the window, and both lanes follow


def test_claim_of_gold_skips_what_the_expert_saw_in_a_qualification_test():
    campaign, expert = factories.open_campaign(gold_rate=0.5), factories.ExpertFactory()
    seen, *_ = [factories.GoldTaskFactory(campaign=campaign) for _ in range(3)]
    attempt = QualificationAttempt.objects.create(expert=expert, domain="medicine", started_at=NOW, pass_mark=0.8)
    QualificationItem.objects.create(attempt=attempt, expert=expert, task=seen, display_order=[0, 1])
    for seed in range(4):
        fast, twin = _claim_twins(campaign, expert, seed, gold=True)
        assert fast == twin and fast["observed"]["task"] != seen.external_id


def test_claim_finds_nothing_when_every_task_is_full(crowded):
    Task.objects.filter(campaign=crowded[0]).update(filled=3)
    fast, twin = _claim_twins(*crowded, 1)
    assert fast == twin and fast["error"] is None and fast["observed"]["lease"] is None


def test_a_second_live_lease_in_one_campaign_is_refused_alike(crowded):
    leases.lease_claim(*crowded, gold=False, now=NOW, rng=random.Random(1))
    fast, twin = _claim_twins(*crowded, 2)
    assert fast == twin and fast["error"][0] is IntegrityError and "assignment_one_live_lease" in fast["error"][1]


# annotations.judgments: judgment_submit

def _leased(campaign=None, *, gold: bool = False, **task_fields):
    campaign = campaign or factories.open_campaign(overlap=3)
    task = (factories.GoldTaskFactory if gold else factories.TaskFactory)(campaign=campaign, **task_fields)
    expert = factories.ExpertFactory()
    lease = leases.lease_claim(campaign, expert, gold=gold, now=NOW, rng=random.Random(5))
    return expert, lease, task


def _submit(expert, lease, at=timedelta(seconds=45), **data):
    data = {"ranking": ["A", "B"], "strength": -2, "rationale": RATIONALE, **data}
    return judgments.judgment_submit(expert=expert, assignment_id=lease.pk, data=judgments.JudgmentInput(**data),
                                     now=NOW + at)


def _judgment_seen(result, lease):
    """The judgment as returned and as stored, the lease, and the task's counts and state."""
    task = Task.objects.get(pk=lease.task_id)
    seen = {"lease": Assignment.objects.filter(pk=lease.pk).values("state", "finished_at", "skip_reason").get(),
            "task": fields(task, "created_at")}
    if result is not None:
        stored = Judgment.objects.get(pk=result.judgment.pk)
        seen.update(created=result.created, returned=fields(result.judgment, "assignment_id"),
                    stored=fields(stored, "assignment_id"), of_lease=stored.assignment_id == lease.pk)
    return seen


def _submit_twins(expert, lease, call=None, module=judgments):
    return twins(module, call or (lambda: _submit(expert, lease)), lambda result: _judgment_seen(result, lease))


@pytest.mark.parametrize("overlap", [3, 1], ids=["counted", "completes the task"])
def test_submit_records_the_same_judgment(overlap):
    expert, lease, _ = _leased(factories.open_campaign(overlap=overlap))
    fast, twin = _submit_twins(expert, lease)
    assert fast == twin and fast["observed"]["stored"]["time_spent_ms"] == 45_000
    completed = fast["observed"]["task"]["state"] == Task.State.COMPLETE
    assert completed == (overlap == 1) and fast["queued"] == int(completed)  # the consensus is queued once


def test_a_gold_answer_is_marked_alike():
    expert, lease, _ = _leased(factories.open_campaign(gold_rate=0.5), gold=True)
    for ranking in (["A", "B"], ["B", "A"]):
        fast, twin = _submit_twins(expert, lease, lambda: _submit(expert, lease, ranking=ranking,
                                                                  strength=-2 if ranking[0] == "A" else 2))
        assert fast == twin and fast["observed"]["stored"]["gold_correct"] is not None


def test_three_responses_with_ratings_map_back_to_upload_positions_alike():
    campaign = factories.open_campaign(responses_per_task=3, strength_scale=False, attribute_axes=["correctness"])
    expert, lease, _ = _leased(campaign)
    fast, twin = _submit_twins(expert, lease, lambda: _submit(
        expert, lease, ranking=["B", ["A", "C"]], strength=None, flags=["unsafe", "unsafe"],
        ratings={"correctness": {"A": 4, "B": 5, "C": 2}}))
    assert fast == twin and fast["observed"]["stored"]["flags"] == ["unsafe"]


REFUSALS = {  # case -> (what the expert sends, the status both paths answer; None: the first judgment is returned)
    "bad form": (lambda e, lease: _submit(e, lease, ranking=["A", "A", "B"], strength=7, flags=["nope"]), 400),
    "someone else's lease": (lambda e, lease: _submit(factories.ExpertFactory(), lease), 404),
    "expired lease": (lambda e, lease: _submit(e, lease, at=timedelta(minutes=25)), 409),
    "closed campaign": (lambda e, lease: _submit(e, lease), 409),
    "same judgment twice": (lambda e, lease: (_submit(e, lease), _submit(e, lease, at=timedelta(seconds=50)))[1], None),
    "another judgment after": (
        lambda e, lease: (_submit(e, lease), _submit(e, lease, ranking=["B", "A"], strength=1)), 409),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_and_repeats_come_out_alike(case):
    expert, lease, _ = _leased()
    if case == "closed campaign":
        Campaign.objects.filter(pk=lease.campaign_id).update(status=Campaign.Status.CLOSED)
    send, status = REFUSALS[case]
    fast, twin = _submit_twins(expert, lease, lambda: send(expert, lease))
    assert fast == twin
    assert fast["observed"]["created"] is False if status is None else fast["error"][2] == status


# datadao.rows: fetch (the prepared statements under the claim and the submit)

def test_fetch_returns_the_same_rows_instances_and_errors():
    expert, lease, task = _leased()
    read, lease_columns, *_ = judgments._submit_sql()
    fast, twin = twins(rows, lambda: rows.fetch(read, {"id": lease.pk, "expert": expert.pk}, one=True),
                       lambda row: (row, fields(lease_columns.load(row[: lease_columns.width]))))
    assert fast == twin and fast["observed"][1]["display_order"] == lease.display_order
    fast, twin = twins(rows, lambda: rows.fetch(read, {"id": lease.pk, "expert": expert.pk + 1}, one=True))
    assert fast == twin and fast["error"] is None and fast["observed"] is None
    fast, twin = twins(rows, lambda: rows.fetch(
        f"UPDATE {Task._meta.db_table} SET filled = target_overlap + 1 WHERE id = %(id)s RETURNING id", {"id": task.pk}))
    assert fast == twin and fast["error"][0] is IntegrityError


def test_claim_and_submit_give_the_same_results_through_either_fetch(crowded):
    fast, twin = _claim_twins(*crowded, 3, module=rows)
    assert fast == twin and fast["observed"]["lease"] is not None
    expert, lease, _ = _leased()
    fast, twin = _submit_twins(expert, lease, module=rows)
    assert fast == twin and fast["observed"]["created"] is True


# annotations.services: task insert (COPY) and the repeated-prompt lookup

UPLOAD = [
    {"external_id": "plain", "prompt": "What lowers blood pressure first?", "metadata": {"source": "exam", "n": 3},
     "responses": [{"model": "m-a", "text": "Thiazides."}, {"model": "m-b", "text": "ACE inhibitors."}]},
    {"external_id": "chat", "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Dose?"}],
     "responses": [{"text": "5 mg."}, {"model": None, "text": "10 mg,\ttwice\r\na day \\ \"max\"."}]},
    {"external_id": "gold", "prompt": "Ünïcode ✓ gold question", "gold": {"ranking": ["B", "A"]},
     "responses": [{"model": "m-a", "text": "Wrong."}, {"model": "m-b", "text": "Right."}]},
    {"external_id": "repeat", "prompt": "  what LOWERS blood pressure first?\r\n", "metadata": None,
     "responses": [{"model": "m-a", "text": "Diuretics."}, {"model": "m-b", "text": "Beta blockers."}]},
]


def _campaign_seen(result, campaign):
    """The import's report, and every task and response of the campaign as a lab would export them."""
    tasks = {t.external_id: fields(t, "created_at") | {"created_at": t.created_at is not None}
             for t in Task.objects.filter(campaign=campaign)}
    responses = sorted(Response.objects.filter(task__campaign=campaign)
                       .values_list("task__external_id", "position", "model_name", "text"))
    return {"result": result and dataclasses.asdict(result), "tasks": tasks, "responses": responses,
            "task_count": Campaign.objects.get(pk=campaign.pk).task_count}


def test_import_into_an_empty_campaign_writes_the_same_tasks():
    campaign = factories.CampaignFactory()
    fast, twin = twins(services, lambda: services.task_import(campaign=campaign, rows=lambda: enumerate(UPLOAD, 1)),
                       lambda result: _campaign_seen(result, campaign))
    assert fast == twin and fast["observed"]["task_count"] == 4
    assert fast["observed"]["result"]["duplicates_total"] == 1  # "repeat" repeats "plain", found in the upload


def test_a_second_import_skips_known_ids_and_reports_repeats_alike():
    campaign = factories.CampaignFactory()
    services.task_import(campaign=campaign, rows=lambda: enumerate(UPLOAD[:3], 1))
    again = [UPLOAD[0], {**UPLOAD[3], "external_id": "new-1"}, {**UPLOAD[3], "external_id": "new-2"},
             {**UPLOAD[2], "external_id": "new-3", "prompt": "Ünïcode ✓ GOLD question"}]
    fast, twin = twins(services, lambda: services.task_import(campaign=campaign, rows=lambda: enumerate(again, 1)),
                       lambda result: _campaign_seen(result, campaign))
    assert fast == twin and fast["observed"]["result"]["skipped"] == 1
    assert {d["external_id"]: d["duplicate_of"] for d in fast["observed"]["result"]["duplicates"]} == {
        "new-1": "plain", "new-2": "plain", "new-3": "gold"}


def test_repeated_prompts_are_matched_the_same_way():
    campaign = factories.CampaignFactory()
    chat = lambda role, content: [{"role": role, "content": content}]  # noqa: E731
    earlier = ["What is the first-line treatment?", "  Dose\tof\r\nwarfarin?  ", chat("user", "Explain CKD staging."),
               "Ünïcode Prompt", "WHAT IS THE FIRST-LINE TREATMENT?"]
    later = ["what is the first-line treatment?", "dose of warfarin?", chat("user", "  explain ckd\nstaging. "),
             chat("assistant", "Explain CKD staging."), "ünïcode prompt", "Ünïcode PROMPT", "dose of  warfarin?",
             "user\x1fExplain CKD staging.", "never asked before"]  # [7]: a string spelling a chat message
    for i, prompt in enumerate(earlier):
        factories.TaskFactory(campaign=campaign, external_id=f"earlier-{i}", prompt=prompt)
    new_ids = array("q", [factories.TaskFactory(campaign=campaign, external_id=f"later-{i}", prompt=prompt).pk
                          for i, prompt in enumerate(later)])
    fast, twin = twins(services, lambda: services._repeats_of_earlier_tasks(campaign, new_ids))
    assert fast == twin
    assert {later: earlier for _, later, earlier in fast["observed"]} == {
        "later-0": "earlier-0", "later-1": "earlier-1", "later-2": "earlier-2", "later-5": "earlier-3",
        "later-7": "earlier-2"}


def test_inserting_a_known_id_fails_alike():
    campaign = factories.CampaignFactory()
    factories.TaskFactory(campaign=campaign, external_id="taken")
    row = TaskRow(line=1, external_id="taken", prompt="Again?", responses=[{"model": "", "text": "Yes."}] * 2)
    fast, twin = twins(services, lambda: services._insert_tasks(campaign, [row]),
                       lambda _: Task.objects.filter(campaign=campaign).count())
    assert fast["observed"] == twin["observed"] == 1
    assert twin["error"][0] is IntegrityError and fast["error"][0] is IntegrityError  # what callers catch


# annotations.quality.writing: consensus upserts and rater rows

def _consensus(task_ids, ranks, p, last, *, n_raters=3, effective=3.0) -> compute.TaskConsensusRows:
    """K = 2 consensus rows as the quality job computes them: one pair per task."""
    p = np.array(p, dtype=np.float64)[:, None]
    count = len(task_ids)
    return compute.TaskConsensusRows(
        task_id=np.array(task_ids), ranks=np.array(ranks), p=p, margin_pairs=np.abs(2 * p - 1),
        votes=np.full((count, 1), n_raters), margin=np.abs(2 * p - 1)[:, 0], effective=np.full(count, effective),
        n_raters=np.full(count, n_raters), last_judgment_id=np.array(last), method="weighted_vote")


def _stored_consensus(campaign):
    return {c.task.external_id: fields(c) for c in TaskConsensus.objects.filter(campaign=campaign).select_related("task")}


def test_a_consensus_batch_writes_the_same_rows_and_count():
    campaign = factories.open_campaign()
    tasks = factories.tasks_bulk(campaign, 7)
    ids = [t.pk for t in tasks]
    before = _consensus(ids[1:], [[1, 2]] * 6, [0.9] * 6, [10, 30, 20, 20, 20, 20])
    for values in before.records(range(6)):  # as an earlier run left them
        TaskConsensus.objects.create(campaign=campaign, version=1, computed_at=NOW, **values)
    TaskConsensus.objects.filter(task_id=ids[5]).update(tokens=80)
    TaskConsensus.objects.filter(task_id=ids[6]).update(effective_votes=None)
    # 0 new; 1 older and changed; 2 newer stored (kept); 3 unchanged; 4 tokens now known; 5 changed, tokens
    # unknown (the stored count stays); 6 effective votes were unknown.
    after = _consensus(ids, [[1, 2], [2, 1], [2, 1], [1, 2], [1, 2], [1, 2], [1, 2]],
                       [0.7, 0.2, 0.2, 0.9, 0.9, 0.6, 0.9], [20] * 7)
    tokens = {ids[0]: 50, ids[4]: 120}
    later = NOW + timedelta(hours=1)
    fast, twin = twins(writing, lambda: writing.consensus_batch_write(campaign.pk, after, range(7), 2, tokens, later),
                       lambda count: (count, _stored_consensus(campaign)))
    assert fast == twin and fast["error"] is None
    count, written = fast["observed"]
    assert count == 5 and {e for e, row in written.items() if row["computed_at"] == later} == {
        tasks[i].external_id for i in (0, 1, 4, 5, 6)}
    assert written[tasks[5].external_id]["tokens"] == 80


@pytest.mark.parametrize("stored_last", [None, 10, 20, 30])
def test_one_task_consensus_is_written_under_the_same_rule(stored_last):
    campaign = factories.open_campaign()
    task = factories.TaskFactory(campaign=campaign)
    if stored_last is not None:
        TaskConsensus.objects.create(task=task, campaign=campaign, ranks=[2, 1], pairs=[], margin=0.1, n_raters=2,
                                     method="weighted_vote", last_judgment_id=stored_last, tokens=70, computed_at=NOW)
    values = next(_consensus([task.pk], [[1, 2]], [0.8], [20]).records(range(1)))
    del values["task_id"]
    fast, twin = twins(writing, lambda: writing.consensus_write_one(task.pk, campaign.pk, values, version=3, tokens=None,
                                                                    now=NOW + timedelta(minutes=5)),
                       lambda row: (row and fields(row), _stored_consensus(campaign)))
    assert fast == twin and fast["error"] is None
    assert (fast["observed"][0] is None) == (stored_last == 30)


def _raters(campaign, experts, n_judgments=40):
    """Rater rows as the quality job builds them (JSON evidence, NULLs, a flag)."""
    return [RaterQuality(campaign=campaign, expert=e, handle=f"r-{i}", n_judgments=n_judgments + i, n_compared=30,
                         agreement=0.61, reliability=None, stake=10**18, vote_weight=1.5, gold_n=4, gold_accuracy=0.75,
                         median_seconds=61.5, flagged=i == 1, flag_speed=i == 1, version=2, computed_at=NOW,
                         evidence={"speed": {"statistic": "z", "value": -4.2, "flagged": i == 1}, "note": "ü \"q\""})
            for i, e in enumerate(experts)]


def test_rater_rows_are_inserted_and_updated_alike():
    campaign = factories.open_campaign()
    experts = [factories.ExpertFactory() for _ in range(3)]
    RaterQuality.objects.create(campaign=campaign, expert=experts[0], handle="old", n_judgments=5, version=1,
                                computed_at=NOW - timedelta(days=1), evidence={"gold": {"n": 1}})
    stored = RaterQuality.objects.filter(campaign=campaign).select_related("expert__user")
    fast, twin = twins(writing, lambda: writing.raters_write(_raters(campaign, experts)),
                       lambda _: sorted((r.expert.user.username, fields(r)) for r in stored.all()))
    assert fast == twin and [row["version"] for _, row in fast["observed"]] == [2, 2, 2]


def test_a_rater_row_the_database_refuses_fails_alike():
    campaign = factories.open_campaign()
    experts = [factories.ExpertFactory()]
    fast, twin = twins(writing, lambda: writing.raters_write(_raters(campaign, experts, n_judgments=-1)),
                       lambda _: RaterQuality.objects.filter(campaign=campaign).count())
    assert fast["observed"] == twin["observed"] == 0
    assert twin["error"][0] is IntegrityError and fast["error"][0] is IntegrityError


# annotations.quality.loading: judgments as integer columns

def _judgment_columns(loaded):
    """Every loaded column, rows in judgment id order (neither read promises an order)."""
    (judged, (in_window, in_inner)) = loaded
    order = np.argsort(judged.judgment_id)
    columns = {f.name: getattr(judged, f.name) for f in dataclasses.fields(judged) if f.name != "k"}
    columns.update(in_window=in_window, in_inner=in_inner)
    return {name: None if c is None else c[order].tolist() for name, c in columns.items()}


def test_judgments_load_as_the_same_columns():
    campaign = factories.open_campaign()
    experts = [factories.ExpertFactory() for _ in range(3)]
    tasks = factories.tasks_bulk(campaign, 3) + factories.tasks_bulk(campaign, 2, prefix="gold", gold=[1, 2])
    start = NOW - timedelta(days=3)
    made = factories.judgments_bulk([
        {"task": task, "expert": expert, "ranks": [1 + (t + e) % 2, 2 - (t + e) % 2], "strength": [None, -3, 2][e],
         "display_order": [[0, 1], [1, 0]][t % 2], "time_spent_ms": 1000 * (t + 1) * (e + 2),
         "flags": ["outside_expertise"] if e == 2 else [], "gold_correct": (t + e) % 2 == 0 if task.is_gold else None,
         "submitted_at": start + timedelta(hours=12 * t + e)}
        for t, task in enumerate(tasks) for e, expert in enumerate(experts)])
    Judgment.objects.filter(pk=made[0].pk).update(voided=True)
    window, inner = (start, start + timedelta(days=2)), (start + timedelta(hours=12), start + timedelta(days=1))
    fast, twin = twins(loading, lambda: loading.load_judgments_windows(campaign.pk, 2, window=window, inner=inner),
                       _judgment_columns)
    assert fast == twin and len(fast["observed"]["judgment_id"]) == 14
    assert sum(fast["observed"]["outside"]) == 5 and fast["observed"]["gold_correct"].count(1) == 3


def test_a_missing_rank_reads_as_minus_one_alike():
    campaign = factories.open_campaign()
    factories.judgments_bulk([{"task": factories.tasks_bulk(campaign, 1)[0], "expert": factories.ExpertFactory(),
                               "ranks": [1, 2]}])
    fast, twin = twins(loading, lambda: loading.load_judgments(campaign.pk, 3), lambda loaded: loaded and
                       loaded[0].ranks.tolist())
    assert fast == twin and fast["observed"] == [[1, 2, -1]]


# rewards.bulk: insert_rows (COPY)

# The columns settlement writes: every NOT NULL column, since COPY leaves out Python-side defaults.
REWARD_COLUMNS = ["epoch_id", "expert_id", "judgments", "matches", "compared", "gold_n", "gold_correct", "agreement",
                  "quality", "quality_low", "stake", "stake_factor", "weight", "value_factor", "amount",
                  "wallet_address", "slashed", "hold_state", "hold_reasons"]


def _reward(epoch, expert, i=0):
    held = i == 2
    return (epoch.pk, expert.pk, 10 + i, 7, 9, 2, 1, 0.5, 0.6, 0.4, 1e18, 1.25, 0.8, 1.0, 1000 * i,
            factories.wallet(i) if i else "", held, EpochReward.HoldState.HELD if held else EpochReward.HoldState.NONE,
            ["collusion"] if held else [])


def _rewards_seen(epoch):
    return [fields(r) for r in EpochReward.objects.filter(epoch=epoch).order_by("expert_id")]


def test_bulk_insert_writes_the_same_rows_and_returns_their_ids_in_order():
    epoch, experts = factories.EpochFactory(), [factories.ExpertFactory() for _ in range(3)]
    claims = [(epoch.pk, factories.wallet(i), i, 5 + i, bytes(range(i, 32 + i))) for i in range(2)]
    fast, twin = twins(bulk, lambda: (
        bulk.insert_rows(EpochReward, REWARD_COLUMNS, [_reward(epoch, e, i) for i, e in enumerate(experts)],
                         with_ids=True),
        bulk.insert_rows(EpochClaim, ["epoch_id", "address", "index", "amount", "proof"], claims),
        bulk.insert_rows(EpochReward, REWARD_COLUMNS, [], with_ids=True),
    ), lambda returned: {
        "returned": returned and ([EpochReward.objects.get(pk=pk).expert_id for pk in returned[0]], *returned[1:]),
        "rewards": _rewards_seen(epoch),
        "claims": [fields(c) | {"proof": bytes(c.proof)}
                   for c in EpochClaim.objects.filter(epoch=epoch).order_by("index")],
    })
    assert fast == twin and fast["error"] is None
    assert fast["observed"]["returned"] == ([e.pk for e in experts], None, [])  # ids in input order
    assert fast["observed"]["rewards"][2]["hold_reasons"] == ["collusion"]


def test_bulk_insert_of_a_duplicate_fails_alike():
    epoch = factories.EpochFactory()
    row = _reward(epoch, factories.ExpertFactory())
    fast, twin = twins(bulk, lambda: bulk.insert_rows(EpochReward, REWARD_COLUMNS, [row, row]),
                       lambda _: _rewards_seen(epoch))
    assert fast["observed"] == twin["observed"] == []
    assert fast["error"][0] is twin["error"][0] is IntegrityError
    assert "epochreward_one_per_expert" in fast["error"][1] and "epochreward_one_per_expert" in twin["error"][1]


def test_bulk_insert_fills_columns_left_out_alike():
    epoch = factories.EpochFactory()
    left_out = ("matches", "compared", "gold_n", "gold_correct", "value_factor", "slashed")
    columns = [c for c in REWARD_COLUMNS if c not in left_out]
    row = tuple(v for c, v in zip(REWARD_COLUMNS, _reward(epoch, factories.ExpertFactory())) if c not in left_out)
    fast, twin = twins(bulk, lambda: bulk.insert_rows(EpochReward, columns, [row]), lambda _: _rewards_seen(epoch))
    assert fast == twin and fast["error"] is None


# rewards.ledger: account locks, known keys, balance deltas

@pytest.fixture
def payroll():
    """A lab holding 100,000 base units and twenty experts' available accounts."""
    lab = factories.LabFactory()
    factories.lab_deposit(lab, 100_000, reference="seed")
    experts = [factories.ExpertFactory() for _ in range(20)]
    accounts = ledger.expert_accounts_bulk([e.pk for e in experts], Account.Kind.AVAILABLE)
    return ledger.lab_account(lab), [accounts[e.pk] for e in experts]


def _pay(lab_account, expert_accounts, amount=100, prefix="pay"):
    return [ledger.posting(key=f"{prefix}-{i}", kind=LedgerTransaction.Kind.REWARD, memo=f"Reward {i}",
                           entries=[(lab_account, -amount * (i + 1)), (account, amount * (i + 1))])
            for i, account in enumerate(expert_accounts)]


def _books(posted):
    """What the books show: each posting's key and whether it moved money now, every balance and entry."""
    entries = sorted(LedgerEntry.objects.values_list("transaction__idempotency_key", "account_id", "amount"))
    return {"posted": posted and [(p.key, p.created, LedgerTransaction.objects.get(pk=p.transaction_id).idempotency_key)
                                  for p in posted],
            "balances": dict(Account.objects.values_list("id", "balance")), "entries": entries,
            "audited": AuditEvent.objects.filter(action="ledger.post").count()}


@pytest.mark.parametrize("experts", [20, 3], ids=["one statement for many balances", "an update per balance"])
def test_a_batch_moves_the_same_money(payroll, experts):
    lab_account, accounts = payroll
    fast, twin = twins(ledger, lambda: ledger.ledger_post_batch(postings=_pay(lab_account, accounts[:experts]), now=NOW),
                       _books)
    assert fast == twin and fast["error"] is None
    assert fast["observed"]["balances"][lab_account.pk] == 100_000 - 100 * experts * (experts + 1) // 2


def test_keys_posted_before_move_nothing_again_alike(payroll):
    lab_account, accounts = payroll
    ledger.ledger_post_batch(postings=_pay(lab_account, accounts[:5]), now=NOW)
    fast, twin = twins(ledger, lambda: ledger.ledger_post_batch(postings=_pay(lab_account, accounts), now=NOW), _books)
    assert fast == twin and fast["error"] is None
    assert [created for _, created, _ in fast["observed"]["posted"]] == [False] * 5 + [True] * 15


@pytest.mark.parametrize("case, refusal", [("a key reused for other money", ledger.IdempotencyConflict),
                                           ("more than the lab holds", ledger.InsufficientFunds),
                                           ("an unknown account", ledger.LedgerError)])
def test_refused_batches_are_refused_alike_and_move_nothing(payroll, case, refusal):
    lab_account, accounts = payroll
    postings = _pay(lab_account, accounts, amount=1_000 if case == "more than the lab holds" else 100)
    if case == "a key reused for other money":
        ledger.ledger_post_batch(postings=_pay(lab_account, accounts[:1], amount=7), now=NOW)
    elif case == "an unknown account":
        postings[3] = ledger.posting(key="pay-3", kind=LedgerTransaction.Kind.REWARD,
                                     entries=[(lab_account, -5), (max(accounts) + 1000, 5)])
    fast, twin = twins(ledger, lambda: ledger.ledger_post_batch(postings=postings, now=NOW), _books)
    assert fast == twin and fast["error"][0] is refusal


def test_a_delta_for_a_missing_account_is_refused_alike(payroll):
    lab_account, accounts = payroll
    deltas = {account: 1 for account in accounts} | {max(accounts) + 1000: 1}
    fast, twin = twins(ledger, lambda: ledger._apply_deltas(deltas), _books)
    assert fast == twin and fast["error"][0] is ledger.LedgerError
