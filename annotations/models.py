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
        help_text="Share of leases that are gold (honeypot) tasks.",
    )
    lease_minutes = models.PositiveSmallIntegerField(default=20, help_text="How long an expert holds a task.")

    # Money (integer base units).
    reward_per_judgment = models.BigIntegerField(default=0, help_text="Budgeted reward per accepted judgment, base units.")
    min_stake = models.BigIntegerField(default=0, help_text="Bonded stake an expert needs to rate, base units.")

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
        default=0.5,
        help_text="Wilson 95% lower bound of gold accuracy below which an expert is flagged and slashed (20+ gold). "
        "0.5 spares honest experts (80% right on 20 gold gives 0.58) and catches random clicking (50% gives 0.30).",
    )
    consensus_weight_cap = models.FloatField(
        default=3.0, validators=[MinValueValidator(1.0)],
        help_text="No rater's consensus vote (reliability x stake) counts for more than this many times the median "
        "rater's vote, so one large staker cannot dictate a consensus.",
    )
    q_min = models.FloatField(default=0.5, help_text="Quality at or below which a rater earns nothing.")
    stake_beta = models.FloatField(default=1.0, help_text="Stake raises a reward by at most (1 + beta) times.")
    slash_fraction = models.FloatField(default=0.1, help_text="Share of bonded stake slashed for failing gold or fraud.")
    treasury_fee_bps = models.PositiveIntegerField(default=500, help_text="Treasury fee on revenue shares, basis points.")

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
    flag_gold = models.BooleanField(default=False, help_text="Gold accuracy's lower bound below the gold bar (20+ gold).")
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

