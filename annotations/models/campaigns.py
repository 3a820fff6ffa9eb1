"""Labs and their campaigns: the domains, a campaign's settings, its tasks and the responses to rank."""
from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class Domain(models.TextChoices):
    MEDICINE = "medicine", "Medicine"
    LAW = "law", "Law"
    MATH = "math", "Mathematics"
    CODE = "code", "Code"
    FINANCE = "finance", "Finance"
    SCIENCE = "science", "Science"
    GENERAL = "general", "General"


MAX_RESPONSES_PER_TASK = 8


class Lab(models.Model):
    name = models.CharField(max_length=200, unique=True, help_text="Organisation name shown to moderators.")
    slug = models.SlugField(max_length=80, unique=True, help_text="Short identifier used in URLs and exports.")
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="labs", blank=True,
        help_text="Users who act for this lab through the API and lab pages.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def default_min_stake() -> int:
    return settings.DATADAO_MIN_STAKE


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        PAUSED = "paused", "Paused"
        CLOSED = "closed", "Closed"

    lab = models.ForeignKey(Lab, on_delete=models.PROTECT, related_name="campaigns")
    name = models.CharField(max_length=200)
    domain = models.CharField(max_length=32, choices=Domain.choices, help_text="Experts must be vetted in this domain.")
    guidelines = models.TextField(blank=True, help_text="Markdown shown to experts beside every task.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True)

    # Judgment form.
    responses_per_task = models.PositiveSmallIntegerField(
        default=2, validators=[MinValueValidator(2), MaxValueValidator(MAX_RESPONSES_PER_TASK)],
        help_text="K: every task has exactly this many responses to rank.",
    )
    strength_scale = models.BooleanField(
        default=True, help_text="For K=2, ask for a 7-point preference strength (-3..+3) instead of a bare choice.",
    )
    attribute_axes = models.JSONField(
        default=list, blank=True,
        help_text="Names of Likert 1..5 attributes rated per response, e.g. [\"correctness\", \"helpfulness\"].",
    )
    rationale_required = models.BooleanField(default=True, help_text="Experts must explain their ranking.")
    rationale_min_length = models.PositiveIntegerField(default=20, help_text="Minimum rationale length in characters.")

    # Work allocation.
    overlap = models.PositiveSmallIntegerField(default=3, help_text="Raters per task before consensus is computed.")
    max_overlap = models.PositiveSmallIntegerField(
        default=5, help_text="Adaptive overlap: disagreeing tasks get raters up to this many, then go to review.",
    )
    gold_rate = models.FloatField(
        default=0.1, validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text="Share of leases that are gold (honeypot) tasks; new experts (fewer than 10 scored gold answers) "
        "and flagged ones get at least DATADAO_NEW_EXPERT_GOLD_RATE (30%) while the campaign has gold.",
    )
    lease_minutes = models.PositiveSmallIntegerField(default=20, help_text="How long an expert holds a task.")

    # Money (integer base units).
    reward_per_judgment = models.BigIntegerField(default=0, help_text="Budgeted reward per accepted judgment, base units.")
    min_stake = models.BigIntegerField(
        default=default_min_stake,
        help_text="Bonded stake an expert needs to rate, base units; also the stake at which the stake bonus is half "
        "way (s_half). Defaults to the platform's minimum bond, so stake weighting is on for a new campaign.",
    )

    # Data rights.
    licence = models.CharField(max_length=64, default="CC-BY-4.0", help_text="SPDX-style licence of the exported data.")
    allowed_uses = models.JSONField(
        default=list, blank=True, help_text="Uses the data may be put to, e.g. [\"research\", \"commercial-training\"].",
    )

    # Quality and reward parameters (DESIGN.md, Rewards section).
    consensus_min_margin = models.FloatField(
        default=0.6, help_text="A pair is exported, and a task settled, only when its consensus margin clears this.",
    )
    gold_bar = models.FloatField(
        default=0.6,
        help_text="Gold accuracy an expert must not be clearly below: with 20+ gold answers in their record, a Wilson "
        "95% upper bound under the bar slashes them (and earns them nothing for the epoch), a lower bound under it "
        "flags them. 0.6 lies between random clicking (0.5, slashed after ~80 gold) and the least accurate honest "
        "expert (0.7, whose upper bound stays above 0.6).",
    )
    consensus_weight_cap = models.FloatField(
        default=3.0, validators=[MinValueValidator(1.0)],
        help_text="No rater's stake counts for more than this many times the median rater's stake in the consensus "
        "vote, so one large staker cannot dictate a consensus (reliability, earned on gold, is not capped).",
    )
    q_min = models.FloatField(
        default=0.5, help_text="Quality at or below which a rater earns nothing (0.5: no better than chance).",
    )
    pay_confidence = models.FloatField(
        default=0.875, validators=[MinValueValidator(0.5), MaxValueValidator(0.999)],
        help_text="Pay keeps only the advantage of quality over q_min that is more than noise at this confidence "
        "(one-sided): at 0.875 a random clicker's lucky streak keeps about a hundredth of an honest expert's pay.",
    )
    gold_weight = models.FloatField(
        default=2.0, validators=[MinValueValidator(0.0)],
        help_text="How many agreement comparisons one gold answer counts for in quality: gold is measured against "
        "the truth, agreement against a consensus that can be wrong or swayed by a ring.",
    )
    stake_beta = models.FloatField(default=1.0, help_text="Stake raises a reward by at most (1 + beta) times.")
    slash_fraction = models.FloatField(default=0.1, help_text="Share of bonded stake slashed for failing gold or fraud.")
    treasury_fee_bps = models.PositiveIntegerField(default=500, help_text="Treasury fee on revenue shares, basis points.")

    # Data sales and data value.
    data_for_sale = models.BooleanField(
        default=False,
        help_text="Other labs may buy exports of this campaign's data, for the uses its licence allows; the "
        "price is shared among the contributors of the exported rows by data value, less the treasury fee.",
    )
    data_price = models.BigIntegerField(
        default=0,
        help_text="Flat price of one export of this campaign's data to another lab (any format and filters), "
        "base units. Must be positive while the data is for sale.",
    )
    data_value_weighting = models.BooleanField(
        default=False,
        help_text="Settlement multiplies each rater's quality term by their normalised data value (value per "
        "pair / mean positive value per pair, clipped to [0, data_value_cap]; raters not valued yet count 1).",
    )
    data_value_cap = models.FloatField(
        default=2.0, validators=[MinValueValidator(1.0)],
        help_text="Largest data-value multiplier a rater can get (the average rater gets 1).",
    )

    task_count = models.PositiveIntegerField(default=0, help_text="Tasks imported (kept by the import service).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["lab", "status"]), models.Index(fields=["status", "domain"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(responses_per_task__gte=2) & Q(responses_per_task__lte=MAX_RESPONSES_PER_TASK),
                name="campaign_k_range",
            ),
            models.CheckConstraint(condition=Q(overlap__gte=1), name="campaign_overlap_positive"),
            models.CheckConstraint(condition=Q(max_overlap__gte=models.F("overlap")), name="campaign_max_overlap_ge_overlap"),
            models.CheckConstraint(condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=0.5), name="campaign_gold_rate_range"),
            models.CheckConstraint(condition=Q(reward_per_judgment__gte=0), name="campaign_reward_nonnegative"),
            models.CheckConstraint(condition=Q(min_stake__gte=0), name="campaign_min_stake_nonnegative"),
            models.CheckConstraint(condition=Q(q_min__gte=0) & Q(q_min__lt=1), name="campaign_q_min_range"),
            models.CheckConstraint(
                condition=Q(slash_fraction__gte=0) & Q(slash_fraction__lte=1), name="campaign_slash_fraction_range",
            ),
            models.CheckConstraint(condition=Q(data_price__gte=0), name="campaign_data_price_nonnegative"),
            models.CheckConstraint(
                condition=Q(data_for_sale=False) | Q(data_price__gt=0), name="campaign_for_sale_has_price",
            ),
            models.CheckConstraint(condition=Q(data_value_cap__gte=1), name="campaign_data_value_cap_range"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.lab})"


class Task(models.Model):
    class State(models.TextChoices):
        OPEN = "open", "Open"
        COMPLETE = "complete", "Complete"
        REVIEW = "review", "Needs moderator review"
        ADJUDICATED = "adjudicated", "Adjudicated"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="tasks")
    external_id = models.CharField(max_length=200, help_text="The lab's id; unique per campaign so re-import is idempotent.")
    prompt = models.JSONField(help_text="A string, or a list of chat messages {role, content}.")
    metadata = models.JSONField(default=dict, blank=True)
    gold = models.JSONField(
        null=True, blank=True,
        help_text="Gold ranks per response position (1 = best) for honeypot tasks; never shown to experts.",
    )
    is_gold = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    target_overlap = models.PositiveSmallIntegerField(help_text="Raters wanted now (raised by adaptive overlap).")
    filled = models.PositiveSmallIntegerField(default=0, help_text="Live leases plus submitted judgments.")
    judgment_count = models.PositiveSmallIntegerField(default=0)
    consensus_due_at = models.DateTimeField(
        null=True, blank=True,
        help_text="Set with the judgment that completed the task, cleared once its consensus is computed; a mark "
        "left standing (a lost job) is repaired by the consensus sweep.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "external_id"], name="task_external_id_unique_per_campaign"),
            models.CheckConstraint(condition=Q(filled__lte=models.F("target_overlap")), name="task_filled_le_overlap"),
            models.CheckConstraint(condition=Q(judgment_count__lte=models.F("filled")), name="task_judgments_le_filled"),
        ]
        indexes = [
            # The assignment query: open, non-gold tasks of a campaign, fullest first.
            models.Index(fields=["campaign", "state", "is_gold", "-filled", "id"], name="task_assign_idx"),
            # The consensus sweep's walk: only marked tasks are in it.
            models.Index(fields=["consensus_due_at"], condition=Q(consensus_due_at__isnull=False),
                         name="task_consensus_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.external_id}"

    @property
    def prompt_is_chat(self) -> bool:
        return isinstance(self.prompt, list)


class Response(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="responses")
    position = models.PositiveSmallIntegerField(help_text="Order in the lab's upload (0-based); never shown to experts.")
    model_name = models.CharField(max_length=200, blank=True, help_text="Hidden from experts.")
    text = models.TextField()

    class Meta:
        ordering = ["task_id", "position"]
        constraints = [models.UniqueConstraint(fields=["task", "position"], name="response_position_unique")]

    def __str__(self) -> str:
        return f"{self.task_id}#{self.position}"
