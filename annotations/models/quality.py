"""Quality, written by the quality jobs: task consensus, agreement reports, per-rater figures and signals.

Also the moderator's review queue: tasks whose consensus stayed under the margin.
"""
from __future__ import annotations

from django.db import models

from annotations.models.campaigns import Campaign, Task
from annotations.models.experts import Expert
from annotations.models.judgments import Judgment


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
