"""Attacks on the reward rules, played through the real pipeline (the engine behind ``incentive_bench.py``).

One run is one fresh campaign made with the model's defaults (only the
domain, K = 2 and the reward per judgment are set), funded well beyond its
work, with tasks whose better response the simulation knows and gold tasks
whose gold answer is that truth. Experts are vetted in the domain, deposit
and bond a stake (the campaign's ``min_stake`` when above 0, else a fixed
100 tokens), then take turns: each turn an account presses Next
(``annotations.assignment.assignment_next``: gold injection, the draw and
the display order all happen there), reads the leased task as shown (slots
A/B in its own order) and answers by its strategy through
``judgment_submit``. Per-task consensus runs as the app triggers it (on
completion, Celery in-process); the campaign quality job runs every
``quality_every`` judgments and at the end; then the epoch is rolled and
settled with ``rewards.settlement``. Nothing of the reward maths is
re-implemented here: what is measured is what the ledger paid.

Time: services take ``now``, so the run has its own clock, starting just
after the campaign opens (the stakes are bonded before). Every strategy
thinks for the same time per judgment (median 75 s, per-account speed
varies), so the speed signal neither helps nor hurts an attacker here. The
epoch is settled at its end (``DATADAO_EPOCH_DAYS`` after the opening),
with ``now`` passed to the roll and to the settlement.

Strategies (answers in displayed slots; the simulation knows the truth by task id):
- honest(p): picks the better response with probability p, strength 1..3, gold alike;
- random: a fair coin per task;
- position: always slot A;
- ring: every account prefers the response whose text has the smaller
  SHA-256, so all ring accounts give identical answers without reading;
  a *timed* ring presses Next back to back (all its accounts lease one
  right after another, then answer).
Rationales are random words (unique per judgment) for every strategy:
writing them is free for an attacker, so copied-rationale detection is not
what the test relies on.

Import after ``django.setup()``; public service entry points only, so the
maths, assignment and settlement as they stand in the working tree are what
runs. Fields that exist only in some versions (payout holds) are looked up
with ``_meta``, so the same engine measures before and after.
"""
from __future__ import annotations

import hashlib
import math
import random
import statistics
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db.models import Sum

from annotations import assignment as assignment_services
from annotations import judgments, leases
from annotations import roles
from annotations.models import Campaign, Domain, Expert, ExpertDomain, Lab, Task
from annotations.quality import services as quality_services
from annotations.services import ServiceError, campaign_create, campaign_transition, task_import
from rewards import services as reward_services
from rewards import settlement
from rewards.models import Epoch, EpochReward, LedgerEntry, LedgerTransaction, Slash
from rewards.selectors import ledger_differences

TOKEN = 10**6
REWARD_PER_JUDGMENT = TOKEN
DOMAIN = Domain.MEDICINE
FALLBACK_STAKE = 100 * TOKEN  # bonded when the campaign's default minimum stake is 0
HONEST_ACCURACIES = (0.7, 0.8, 0.9)
MIN_WORK = 30  # an honest expert with at least this many judgments must be paid

HONEST, RANDOM, POSITION, RING = "honest", "random", "position", "ring"
KINDS = (HONEST, RANDOM, POSITION, RING)


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Cohort:
    """Accounts that play one strategy; ``label`` is their row in the results."""

    label: str
    kind: str
    accounts: int
    accuracy: tuple[float, ...] = HONEST_ACCURACIES  # honest: per account, cycled
    turns: int = 1  # turns per round per account (one account doing five accounts' work: 5)
    stake_multiple: int = 1
    timed: bool = False  # ring: all accounts press Next back to back in one turn
    # Counted in the honest targets (paid with enough work, never slashed, pay by accuracy).
    honest_checks: bool = False
    # Counted in the honest mean that pay per judgment is compared with.
    honest_baseline: bool = False


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    cohorts: tuple[Cohort, ...]
    # Tasks (and gold) times this: a single account doing five accounts' work must not run out of tasks
    # it has not seen, or "the same work" would be less work.
    task_scale: int = 1


def _honest(n: int) -> Cohort:
    return Cohort("honest", HONEST, n, honest_checks=True, honest_baseline=True)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("A", "20 honest + 5 random clickers", (_honest(20), Cohort("random", RANDOM, 5))),
    Scenario("B", "20 honest + 5 position-biased", (_honest(20), Cohort("position", POSITION, 5))),
    Scenario("C", "15 honest + 6-account ring", (_honest(15), Cohort("ring", RING, 6))),
    Scenario("D", "15 honest + 6-account timed ring", (_honest(15), Cohort("timed ring", RING, 6, timed=True))),
    Scenario("E", "8 honest + 12-account ring (majority)", (_honest(8), Cohort("ring", RING, 12))),
    Scenario("E0", "the same 8 honest alone", (_honest(8),)),
    Scenario("F", "15 honest + one person (p=0.8) on 5 accounts",
             (_honest(15), Cohort("split", HONEST, 5, accuracy=(0.8,))), task_scale=2),
    Scenario("F1", "15 honest + that person's work on 1 account",
             (_honest(15), Cohort("single", HONEST, 1, accuracy=(0.8,), turns=5, honest_checks=True)), task_scale=2),
    Scenario("G", "15 honest + two p=0.8 experts, 1x and 10x stake",
             (_honest(15), Cohort("stake 1x", HONEST, 1, accuracy=(0.8,), honest_checks=True),
              Cohort("stake 10x", HONEST, 1, accuracy=(0.8,), stake_multiple=10, honest_checks=True))),
)}


@dataclass(frozen=True)
class RunConfig:
    tasks: int = 300
    gold: int = 30
    judgments: int = 1300  # stop once this many are made (or nothing is left)
    quality_every: int = 200
    think_median_s: float = 75.0
    turn_gap_s: float = 8.0  # mean clock step between turns (experts work side by side)


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass
class AccountResult:
    expert_id: int
    label: str
    kind: str
    accuracy: float | None
    honest_checks: bool
    honest_baseline: bool
    stake: int
    judgments: int = 0
    gold: int = 0
    gold_right: int = 0
    right: int = 0  # answers that match the truth (gold and regular)
    paid: int = 0  # what the ledger credited as rewards
    held: int = 0  # planned rewards on hold for a moderator (when the settlement has holds)
    slashed: bool = False

    @property
    def per_judgment(self) -> float:
        return self.paid / self.judgments if self.judgments else 0.0


@dataclass
class RunResult:
    scenario: str
    seed: int
    accounts: list[AccountResult]
    judgments: int = 0
    budget: int = 0
    paid_total: int = 0
    dust: int = 0
    retained: int = 0
    held_total: int = 0
    epochs: int = 0
    problems: list[str] = field(default_factory=list)  # conservation and ledger failures
    notes: list[str] = field(default_factory=list)  # refused submissions and the like
    seconds: float = 0.0

    @property
    def conserved(self) -> bool:
        return not self.problems


# --------------------------------------------------------------------------
# Strategies (pure)
# --------------------------------------------------------------------------


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def choose(kind: str, *, shown: list[str], better_text: str, accuracy: float | None,
           rng: random.Random) -> tuple[int, int]:
    """The slot an account ranks first (0 = A) and the strength magnitude, given the task as shown."""
    if kind == HONEST:
        right = shown.index(better_text)
        pick = right if rng.random() < (accuracy or 0.0) else 1 - right
        return pick, rng.randint(1, 3)
    if kind == RANDOM:
        return rng.randrange(2), rng.randint(1, 3)
    if kind == POSITION:
        return 0, rng.randint(1, 3)
    if kind == RING:
        hashes = [text_hash(t) for t in shown]
        return hashes.index(min(hashes)), 2
    raise ValueError(f"unknown strategy {kind!r}")


class _Words:
    """A vocabulary for texts and rationales: random words, reproducible per seed."""

    def __init__(self, rng: random.Random, size: int = 4000):
        self.words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9))) for _ in range(size)]

    def text(self, rng: random.Random, n: int) -> str:
        return " ".join(rng.choices(self.words, k=n))


# --------------------------------------------------------------------------
# Setup through the services
# --------------------------------------------------------------------------


@dataclass
class _Account:
    expert: Expert
    result: AccountResult
    cohort: Cohort
    speed: float
    free_at: datetime | None = None
    done: bool = False  # refused by Next (not eligible): out of the run


def _moderator(tag: str) -> User:
    user = User.objects.create(username=f"incentive-mod-{tag}", is_staff=True, is_superuser=True)
    user.groups.add(Group.objects.get_or_create(name=roles.MODERATOR)[0])
    return user


def _vetted_expert(tag: str, k: int) -> Expert:
    """An expert a moderator has vetted in the campaign's domain (as the admin leaves it)."""
    user = User.objects.create(username=f"incentive-{tag}-{k}")
    user.groups.add(Group.objects.get_or_create(name=roles.EXPERT)[0])
    expert = Expert.objects.create(user=user, domains=[DOMAIN], credentials="bench expert", state=Expert.State.VETTED)
    ExpertDomain.objects.create(expert=expert, domain=DOMAIN, state=ExpertDomain.State.VETTED, score=1.0)
    return expert


def _task_rows(config: RunConfig, words: _Words, rng: random.Random) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Import rows and, per external id, the text of the better response (the hidden truth)."""
    rows, truth = [], {}
    for i in range(config.tasks + config.gold):
        gold = i >= config.tasks
        external_id = f"{'gold' if gold else 'task'}-{i}"
        texts = [f"{external_id} response {p}: {words.text(rng, rng.randint(30, 80))}" for p in range(2)]
        better = rng.randrange(2)
        row: dict[str, Any] = {
            "external_id": external_id,
            "prompt": f"Question {i}: {words.text(rng, 20)}?",
            "responses": [{"model": f"model-{p}", "text": texts[p]} for p in range(2)],
        }
        if gold:
            row["gold"] = {"ranking": ["A", "B"] if better == 0 else ["B", "A"]}  # upload order
        rows.append(row)
        truth[external_id] = texts[better]
    return rows, truth


def _setup(scenario: Scenario, config: RunConfig, seed: int, words: _Words, rng: random.Random):
    tag = uuid.uuid4().hex[:10]
    moderator = _moderator(tag)
    lab = Lab.objects.create(name=f"Incentive lab {tag}", slug=f"incentive-{tag}")
    # Only what must be set: everything else (overlap, gold rate, min stake, q_min...) is the model's default.
    campaign = campaign_create(lab=lab, name=f"Incentive {scenario.name} seed {seed} {tag}", domain=DOMAIN,
                               responses_per_task=2, reward_per_judgment=REWARD_PER_JUDGMENT)
    rows, truth_by_external = _task_rows(config, words, rng)
    task_import(campaign=campaign, rows=lambda: enumerate(rows, start=1))
    truth = {
        task_id: truth_by_external[external_id]
        for task_id, external_id in Task.objects.filter(campaign=campaign).values_list("id", "external_id")
    }
    escrow = 2 * max(config.judgments, config.tasks * 5) * REWARD_PER_JUDGMENT
    reward_services.lab_topup(lab=lab, amount=escrow, reference=f"incentive-{tag}", actor=moderator)
    reward_services.campaign_fund(campaign=campaign, amount=escrow, actor=moderator)

    base_stake = campaign.min_stake if campaign.min_stake > 0 else FALLBACK_STAKE
    accounts: list[_Account] = []
    k = 0
    for cohort in scenario.cohorts:
        for j in range(cohort.accounts):
            expert = _vetted_expert(tag, k)
            k += 1
            stake = base_stake * cohort.stake_multiple
            reward_services.expert_deposit(expert=expert, amount=stake, reference=f"incentive-{tag}-{k}",
                                           actor=moderator)
            reward_services.stake_bond(expert=expert, amount=stake)
            accuracy = cohort.accuracy[j % len(cohort.accuracy)] if cohort.kind == HONEST else None
            result = AccountResult(expert_id=expert.pk, label=cohort.label, kind=cohort.kind, accuracy=accuracy,
                                   honest_checks=cohort.honest_checks, honest_baseline=cohort.honest_baseline,
                                   stake=stake)
            accounts.append(_Account(expert, result, cohort, speed=math.exp(rng.gauss(0.0, 0.25))))
    # Opened after the stakes are bonded, so every stake counts for the whole epoch.
    campaign = campaign_transition(campaign=campaign, action="open")
    return campaign, accounts, truth


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


class _Clock:
    def __init__(self, start: datetime, gap_s: float, rng: random.Random):
        self.now, self.gap_s, self.rng = start, gap_s, rng

    def tick(self) -> datetime:
        self.now += timedelta(seconds=self.rng.expovariate(1.0 / self.gap_s))
        return self.now


def _think(config: RunConfig, account: _Account, rng: random.Random) -> timedelta:
    seconds = config.think_median_s * account.speed * math.exp(rng.gauss(0.0, 0.35))
    return timedelta(seconds=min(max(seconds, 10.0), 900.0))


def _units(accounts: list[_Account], rng: random.Random) -> list[list[_Account]]:
    """One round of turns in random order: each account its share; a timed ring's accounts all in one turn."""
    units: list[list[_Account]] = []
    timed: dict[str, list[_Account]] = defaultdict(list)
    for account in accounts:
        if account.done:
            continue
        if account.cohort.timed:
            timed[account.cohort.label].append(account)
        else:
            units.extend([account] for _ in range(account.cohort.turns))
    units.extend(timed.values())
    rng.shuffle(units)
    return units


class _Session:
    """One campaign's turns: leases, answers, submissions, quality jobs."""

    def __init__(self, campaign: Campaign, truth: dict[int, str], config: RunConfig, seed: int,
                 words: _Words, rng: random.Random, result: RunResult):
        self.campaign, self.truth, self.config, self.seed = campaign, truth, config, seed
        self.words, self.rng, self.result = words, rng, result
        self.assign_rng = random.Random(seed * 7919 + 1)  # the service's draws (order, gold, window)
        self.made = 0
        self.next_quality = config.quality_every

    def lease(self, account: _Account, at: datetime):
        try:
            lease = assignment_services.assignment_next(
                expert=account.expert, campaign=self.campaign, rng=self.assign_rng, now=at)
        except ServiceError as exc:
            self.result.notes.append(f"expert {account.expert.pk}: Next refused: {exc.message}")
            account.done = True
            return None
        return lease  # None: nothing for this account now (a disagreeing task may reopen later)

    def answer(self, account: _Account, lease, at: datetime) -> None:
        shown = [r["text"] for r in leases.leased_task(lease).responses]
        better = self.truth[lease.task_id]
        pick, magnitude = choose(account.cohort.kind, shown=shown, better_text=better,
                                 accuracy=account.result.accuracy, rng=self.rng)
        letters = ["A", "B"]
        data = judgments.JudgmentInput(
            ranking=[letters[pick], letters[1 - pick]],
            strength=-magnitude if pick == 0 else magnitude,
            rationale=f"{letters[pick]} is better: {self.words.text(self.rng, 12)}",
        )
        try:
            submitted = judgments.judgment_submit(
                expert=account.expert, assignment_id=lease.pk, data=data, now=at)
        except ServiceError as exc:
            self.result.notes.append(f"expert {account.expert.pk}: submit refused: {exc.message}")
            try:
                assignment_services.assignment_skip(expert=account.expert, assignment_id=lease.pk,
                                                    reason="bench: refused", now=at)
            except ServiceError:
                pass
            return
        r = account.result
        r.judgments += 1
        right = shown[pick] == better
        r.right += right
        if submitted.judgment.is_gold:
            r.gold += 1
            r.gold_right += right
        self.made += 1
        if self.made >= self.next_quality:
            self.next_quality += self.config.quality_every
            self.quality()

    def quality(self) -> None:
        quality_services.campaign_quality_compute(campaign_id=self.campaign.pk, seed=self.seed)

    def play(self, accounts: list[_Account], clock: _Clock) -> None:
        while self.made < self.config.judgments:
            units = _units(accounts, self.rng)
            made_before = self.made
            for unit in units:
                if self.made >= self.config.judgments:
                    break
                start = max([clock.tick()] + [a.free_at for a in unit if a.free_at])
                leases = []
                for n, account in enumerate(unit):  # a timed ring: back to back, a second apart
                    at = start + timedelta(seconds=n)
                    lease = self.lease(account, at)
                    if lease is not None:
                        leases.append((account, lease, at))
                for account, lease, at in leases:
                    submit_at = at + _think(self.config, account, self.rng)
                    self.answer(account, lease, submit_at)
                    account.free_at = submit_at + timedelta(seconds=1)
            if self.made == made_before:
                break  # a whole round found nothing left
        self.quality()


def _epoch_end_after(campaign: Campaign, last: datetime) -> datetime:
    """The end of the epoch holding ``last`` (epochs tile time from the opening), plus a minute."""
    length = timedelta(days=settings.DATADAO_EPOCH_DAYS)
    periods = max(1, math.ceil((last - campaign.opened_at) / length))
    return campaign.opened_at + periods * length + timedelta(minutes=1)


def _has_field(model, name: str) -> bool:
    return any(f.name == name for f in model._meta.get_fields())


def _settle(campaign: Campaign, last: datetime, result: RunResult) -> None:
    at = _epoch_end_after(campaign, last)
    due = settlement.campaign_epochs_roll(campaign=campaign, now=at)
    for epoch_id in due:
        settlement.epoch_settle(epoch_id=epoch_id, now=at)


def _collect(campaign: Campaign, accounts: list[_Account], result: RunResult) -> None:
    by_expert = {a.result.expert_id: a.result for a in accounts}
    epochs = list(Epoch.objects.filter(campaign=campaign).order_by("index"))
    holds = _has_field(EpochReward, "hold_state")
    held_field = _has_field(Epoch, "held_total")
    for epoch in epochs:
        if epoch.judgment_count == 0 and epoch.state == Epoch.State.OPEN:
            continue  # the next, empty epoch the roll opened
        result.epochs += 1
        if epoch.state != Epoch.State.SETTLED:
            result.problems.append(f"epoch {epoch.index} is {epoch.state}, not settled")
        held = epoch.held_total if held_field else 0
        result.budget += epoch.budget
        result.paid_total += epoch.paid_total
        result.dust += epoch.dust
        result.retained += epoch.retained
        result.held_total += held
        if epoch.paid_total + epoch.dust + epoch.retained + held != epoch.budget:
            result.problems.append(
                f"epoch {epoch.index}: paid {epoch.paid_total} + dust {epoch.dust} + retained {epoch.retained}"
                f" + held {held} != budget {epoch.budget}")
    credited = dict(
        LedgerEntry.objects.filter(transaction__epoch__campaign=campaign, transaction__kind=LedgerTransaction.Kind.REWARD,
                                   amount__gt=0)
        .values("account__expert_id").annotate(total=Sum("amount")).order_by()
        .values_list("account__expert_id", "total")
    )
    for expert_id, total in credited.items():
        if expert_id in by_expert:
            by_expert[expert_id].paid = int(total)
    if sum(credited.values()) != result.paid_total:
        result.problems.append(f"ledger credits {sum(credited.values())} in rewards; epochs say {result.paid_total}")
    if holds:
        for expert_id, amount in EpochReward.objects.filter(
            epoch__campaign=campaign, hold_state=EpochReward.HoldState.HELD,
        ).values_list("expert_id", "amount"):
            if expert_id in by_expert:
                by_expert[expert_id].held += amount
    for expert_id in Slash.objects.filter(epoch__campaign=campaign).values_list("expert_id", flat=True):
        if expert_id in by_expert:
            by_expert[expert_id].slashed = True
    differences = ledger_differences()
    if differences:
        result.problems.append(f"ledger differences: {differences[:3]}")


def run(scenario: Scenario | str, *, seed: int, config: RunConfig | None = None) -> RunResult:
    """Play one scenario on a fresh campaign, settle it, and read back what the ledger paid."""
    scenario = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    config = config or RunConfig()
    if scenario.task_scale != 1:
        config = replace(config, tasks=config.tasks * scenario.task_scale, gold=config.gold * scenario.task_scale)
    started = time.perf_counter()
    rng = random.Random(f"{scenario.name}:{seed}")
    words = _Words(random.Random(seed))
    campaign, accounts, truth = _setup(scenario, config, seed, words, rng)
    result = RunResult(scenario=scenario.name, seed=seed, accounts=[a.result for a in accounts])
    clock = _Clock(campaign.opened_at + timedelta(minutes=1), config.turn_gap_s, rng)
    session = _Session(campaign, truth, config, seed, words, rng, result)
    session.play(accounts, clock)
    result.judgments = session.made
    last = max([clock.now] + [a.free_at for a in accounts if a.free_at])
    _settle(campaign, last, result)
    _collect(campaign, accounts, result)
    result.seconds = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------
# Figures (pure, over results)
# --------------------------------------------------------------------------


def honest_per_judgment(result: RunResult) -> float:
    """Mean pay per judgment over the honest baseline accounts (base units)."""
    values = [a.per_judgment for a in result.accounts if a.honest_baseline and a.judgments]
    return statistics.fmean(values) if values else 0.0


@dataclass
class LabelFigures:
    label: str
    accounts: int
    judgments: int
    paid: int
    held: int
    slashed: int
    unpaid_with_work: int  # honest-checked accounts with MIN_WORK+ judgments and nothing paid
    share_of_paid: float  # of everything the epochs paid (and held)
    share_of_budget: float
    per_judgment: float  # mean over the label's accounts, base units
    relative: float  # per_judgment / honest baseline mean


def label_figures(result: RunResult) -> dict[str, LabelFigures]:
    baseline = honest_per_judgment(result)
    paid_out = result.paid_total + result.held_total
    groups: dict[str, list[AccountResult]] = defaultdict(list)
    for a in result.accounts:
        groups[a.label].append(a)
    out = {}
    for label, members in groups.items():
        paid = sum(a.paid for a in members)
        ppj = statistics.fmean([a.per_judgment for a in members if a.judgments] or [0.0])
        out[label] = LabelFigures(
            label=label, accounts=len(members), judgments=sum(a.judgments for a in members), paid=paid,
            held=sum(a.held for a in members), slashed=sum(a.slashed for a in members),
            unpaid_with_work=sum(1 for a in members if a.honest_checks and a.judgments >= MIN_WORK and a.paid <= 0),
            share_of_paid=paid / paid_out if paid_out else 0.0,
            share_of_budget=paid / result.budget if result.budget else 0.0,
            per_judgment=ppj, relative=ppj / baseline if baseline else math.nan,
        )
    return out


def accuracy_groups(result: RunResult) -> dict[float, float]:
    """Mean pay per judgment of honest-checked accounts by accuracy (base units)."""
    groups: dict[float, list[float]] = defaultdict(list)
    for a in result.accounts:
        if a.honest_checks and a.accuracy is not None and a.judgments:
            groups[a.accuracy].append(a.per_judgment)
    return {acc: statistics.fmean(v) for acc, v in sorted(groups.items())}


def honest_slashed(result: RunResult) -> int:
    return sum(1 for a in result.accounts if a.honest_checks and a.slashed)


def honest_unpaid(result: RunResult, min_judgments: int = MIN_WORK) -> int:
    return sum(1 for a in result.accounts if a.honest_checks and a.judgments >= min_judgments and a.paid <= 0)
