"""Exports: frozen, reproducible snapshots of a campaign's preference data.

The table predates the app (``annotations_export``, pinned by ``db_table``).
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotations.models import Campaign


class Export(models.Model):
    """One export of a campaign's data: its filters as requested, the files it wrote and their checksums.

    Written only by ``exports.services``: a request creates it
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
        db_table = "annotations_export"  # the table from before the app's split, rows kept
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["campaign", "-created_at"], name="export_campaign_time_idx")]
        constraints = [
            models.CheckConstraint(condition=~Q(state="done") | ~Q(sha256_train=""), name="export_done_has_checksum"),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} of {self.campaign_id} ({self.format}, {self.state})"
