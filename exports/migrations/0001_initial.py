"""Exports, as they stood in the annotations app, now owned by the exports app.

State only: the table exists already (``annotations_export``, pinned by ``db_table``) with its rows,
constraints and indexes. rewards' 0009 points the data purchase at this model, then annotations' 0018
removes it from annotations' state.
"""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("annotations", "0017_notification_subject_dispute_moved"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
            migrations.CreateModel(
                name='Export',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('format', models.CharField(choices=[('trl_preference', 'TRL preference (prompt, chosen, rejected strings)'), ('trl_conversational', 'TRL conversational (message lists)'), ('reward_pairs', 'Reward-model pairs with margin'), ('ranking', 'K-way ranking (like Nectar)'), ('attributes', 'Per-response attribute scores (like HelpSteer2)'), ('judgments', 'Individual judgments with rater handles')], help_text='Row layout of the data files.', max_length=32)),
                    ('file_format', models.CharField(choices=[('jsonl', 'JSON Lines'), ('parquet', 'Parquet')], default='jsonl', help_text='File type of the data files.', max_length=16)),
                    ('params', models.JSONField(blank=True, default=dict, help_text='Filters and options with defaults filled in when requested; the build reads only these.')),
                    ('state', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], db_index=True, default='queued', max_length=16)),
                    ('progress_done', models.PositiveIntegerField(default=0, help_text='Source tasks read so far.')),
                    ('progress_total', models.PositiveIntegerField(default=0, help_text='Source tasks to read (counted at start).')),
                    ('rows_train', models.PositiveIntegerField(default=0, help_text='Rows in the train file.')),
                    ('rows_test', models.PositiveIntegerField(default=0, help_text='Rows in the test file (0: no test split).')),
                    ('stats', models.JSONField(blank=True, default=dict, help_text='What the card reports: rows left out or flagged per reason, agreement figures, raters excluded.')),
                    ('consensus_version', models.PositiveIntegerField(blank=True, help_text="Newest TaskConsensus.version among the campaign's tasks at build time.", null=True)),
                    ('quality_report_version', models.PositiveIntegerField(blank=True, help_text='Quality report whose agreement figures the rows and card cite.', null=True)),
                    ('train_file', models.CharField(blank=True, help_text='Train file, relative to the export root.', max_length=255)),
                    ('test_file', models.CharField(blank=True, help_text='Test file, relative to the export root.', max_length=255)),
                    ('sha256_train', models.CharField(blank=True, help_text='SHA-256 of the train file.', max_length=64)),
                    ('sha256_test', models.CharField(blank=True, help_text='SHA-256 of the test file.', max_length=64)),
                    ('sha256_card', models.CharField(blank=True, help_text='SHA-256 of the dataset card (UTF-8).', max_length=64)),
                    ('bytes_train', models.BigIntegerField(default=0, help_text='Size of the train file in bytes.')),
                    ('bytes_test', models.BigIntegerField(default=0, help_text='Size of the test file in bytes.')),
                    ('card', models.TextField(blank=True, help_text='Dataset card (README.md): Markdown with YAML front matter.')),
                    ('error', models.TextField(blank=True, help_text='Why the build failed.')),
                    ('created_at', models.DateTimeField(auto_now_add=True, help_text='When the lab asked for the export.')),
                    ('started_at', models.DateTimeField(blank=True, help_text='When the (latest) build started.', null=True)),
                    ('finished_at', models.DateTimeField(blank=True, help_text='When the build finished or failed.', null=True)),
                    ('heartbeat_at', models.DateTimeField(blank=True, help_text='When the running build last said it was alive; a build silent for minutes is taken for dead and started again by the export sweep.', null=True)),
                    ('campaign', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='exports', to='annotations.campaign')),
                    ('requested_by', models.ForeignKey(blank=True, help_text='Lab member who asked for the export.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'db_table': 'annotations_export',
                    'ordering': ['-created_at', '-id'],
                    'indexes': [models.Index(fields=['campaign', '-created_at'], name='export_campaign_time_idx')],
                    'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('state', 'done'), _negated=True), models.Q(('sha256_train', ''), _negated=True), _connector='OR'), name='export_done_has_checksum')],
                },
            ),
            ],
            database_operations=[],
        ),
    ]
