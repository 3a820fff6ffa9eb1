"""Disputes, as they stood in the annotations app (0008 and later), now owned by moderation.

State only: the table exists already (``annotations_dispute``, pinned by ``db_table``) with its rows,
constraints and indexes. annotations' 0017 removes the model from annotations' state after this one
adds it here.
"""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("annotations", "0016_move_data_value_models"),
        ("rewards", "0008_claim_adjustment_pending"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
            migrations.CreateModel(
                name='Dispute',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('kind', models.CharField(choices=[('slash', 'Expert: a slash of my stake'), ('gold_verdict', 'Expert: a gold answer scored wrong'), ('voided_judgment', 'Expert: a voided judgment'), ('judgment_quality', "Lab: a judgment's quality (low effort or fraud)")], db_index=True, help_text='What is disputed.', max_length=24)),
                    ('state', models.CharField(choices=[('open', 'Open'), ('escalated', 'Escalated'), ('resolved', 'Resolved')], db_index=True, default='open', max_length=16)),
                    ('subject_key', models.CharField(help_text='One dispute per disputed decision (e.g. slash:12, lab:3:judgment:45); a repeat returns it.', max_length=100, unique=True)),
                    ('statement', models.TextField(help_text="The disputant's case, as they wrote it.")),
                    ('evidence', models.JSONField(blank=True, default=dict, help_text="Frozen when the dispute was opened: task, judgment, gold answer, consensus, the rater's signals, the slash. Later changes to those rows do not change it.")),
                    ('resolution', models.CharField(blank=True, choices=[('upheld', 'Upheld: the decision stands'), ('overturned', 'Overturned: the decision is reversed')], max_length=16)),
                    ('resolution_reason', models.TextField(blank=True, help_text='Why the moderator decided so; shown to the parties.')),
                    ('resolved_at', models.DateTimeField(blank=True, null=True)),
                    ('escalated_at', models.DateTimeField(blank=True, null=True)),
                    ('escalation_note', models.TextField(blank=True, help_text='Why the dispute went to a senior moderator.')),
                    ('outcome', models.JSONField(blank=True, default=dict, help_text='What resolving did: ledger transactions posted (ids, amounts), judgment changes.')),
                    ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                    ('campaign', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='disputes', to='annotations.campaign')),
                    ('escalated_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('expert', models.ForeignKey(help_text='The expert concerned: the disputant, or whose judgment a lab disputes.', on_delete=django.db.models.deletion.PROTECT, related_name='disputes', to='annotations.expert')),
                    ('judgment', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='disputes', to='annotations.judgment')),
                    ('lab', models.ForeignKey(blank=True, help_text='The disputing lab (lab disputes only).', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='disputes', to='annotations.lab')),
                    ('raised_by', models.ForeignKey(help_text='The user who opened the dispute.', on_delete=django.db.models.deletion.PROTECT, related_name='disputes_raised', to=settings.AUTH_USER_MODEL)),
                    ('resolved_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('slash', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='disputes', to='rewards.slash')),
                ],
                options={
                    'db_table': 'annotations_dispute',
                    'ordering': ['-created_at', '-id'],
                    'permissions': [('resolve_escalated_dispute', 'Can resolve escalated disputes')],
                    'indexes': [models.Index(fields=['state', 'kind', 'created_at'], name='dispute_queue_idx')],
                    'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('resolution__in', ['upheld', 'overturned']), ('resolved_at__isnull', False), ('state', 'resolved'), models.Q(('resolution_reason', ''), _negated=True)), models.Q(models.Q(('state', 'resolved'), _negated=True), ('resolution', '')), _connector='OR'), name='dispute_resolved_has_resolution_and_reason'), models.CheckConstraint(condition=models.Q(models.Q(('kind', 'slash'), ('slash__isnull', False)), models.Q(('judgment__isnull', False), ('kind__in', ['gold_verdict', 'voided_judgment'])), models.Q(('judgment__isnull', False), ('kind', 'judgment_quality'), ('lab__isnull', False)), _connector='OR'), name='dispute_kind_has_subject'), models.CheckConstraint(condition=models.Q(('statement', ''), _negated=True), name='dispute_has_statement')],
                },
            ),
            ],
            database_operations=[],
        ),
    ]
