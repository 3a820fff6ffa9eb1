"""Moving Dispute to the moderation app keeps every row, every notification's link, and the permissions.

The database is taken back to before the move (annotations at 0016, moderation unapplied), a dispute
and its notifications are written through the historical models, and migrating forward must show the
same dispute through ``moderation.models``, each notification's link as its ``subject`` key, and the
dispute content type (so the ``resolve_escalated_dispute`` grant) under ``moderation``. Going back
restores the foreign key. Runs on SQLite and on PostgreSQL; the database is left migrated.
"""
from __future__ import annotations

import datetime as dt

from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TransactionTestCase

from annotations.models import Notification
from moderation.models import Dispute

BEFORE = [("annotations", "0016_move_data_value_models"), ("moderation", None)]
AT = dt.datetime(2026, 6, 7, 8, 9, 10, tzinfo=dt.timezone.utc)


def _migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()  # what is applied now
    return executor


def _old_world(old):
    User = old.get_model("auth", "User")
    lab_user = User.objects.create(username="lab-lee-mod")
    expert_user = User.objects.create(username="expert-ann-mod")
    lab = old.get_model("annotations", "Lab").objects.create(name="Lab Mod", slug="lab-mod")
    campaign = old.get_model("annotations", "Campaign").objects.create(lab=lab, name="Moved", domain="general")
    task = old.get_model("annotations", "Task").objects.create(
        campaign=campaign, external_id="t-9", prompt="Which is right?", target_overlap=3)
    expert = old.get_model("annotations", "Expert").objects.create(user=expert_user)
    assignment = old.get_model("annotations", "Assignment").objects.create(
        task=task, expert=expert, campaign=campaign, display_order=[0, 1], leased_at=AT, expires_at=AT)
    judgment = old.get_model("annotations", "Judgment").objects.create(
        assignment=assignment, task=task, expert=expert, campaign=campaign, ranks=[1, 2], strength=2,
        display_order=[0, 1], time_spent_ms=4000, submitted_at=AT)
    dispute = old.get_model("annotations", "Dispute").objects.create(
        kind="judgment_quality", state="resolved", subject_key=f"lab:{lab.pk}:judgment:{judgment.pk}",
        expert=expert, lab=lab, raised_by=lab_user, campaign=campaign, judgment=judgment,
        statement="This rater did not read the task at all.", evidence={"task": {"id": task.pk}},
        resolution="upheld", resolution_reason="The judgment stands.", resolved_by=lab_user, resolved_at=AT,
        outcome={"transactions": []})
    Note = old.get_model("annotations", "Notification")
    linked = [Note.objects.create(user=user, kind="dispute.resolved", title="Upheld", dispute=dispute)
              for user in (lab_user, expert_user)]
    plain = Note.objects.create(user=expert_user, kind="api_token_revoked", title="Revoked")
    return dispute, linked, plain


class ModerationMoveTest(TransactionTestCase):

    def tearDown(self) -> None:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
        ContentType.objects.clear_cache()
        super().tearDown()

    def test_disputes_notifications_and_permissions_follow_the_model(self) -> None:
        executor = _migrate(BEFORE)
        old = executor.loader.project_state(BEFORE[0]).apps
        with self.assertRaises(LookupError):
            old.get_model("moderation", "Dispute")
        dispute, linked, plain = _old_world(old)
        OldContentType = old.get_model("contenttypes", "ContentType")
        type_id = OldContentType.objects.get_or_create(app_label="annotations", model="dispute")[0].pk
        grant = old.get_model("auth", "Permission").objects.get_or_create(
            content_type_id=type_id, codename="resolve_escalated_dispute",
            defaults={"name": "Can resolve escalated disputes"})[0]

        _migrate(executor.loader.graph.leaf_nodes())
        ContentType.objects.clear_cache()

        moved = Dispute.objects.get()
        self.assertEqual(
            (moved.pk, moved.kind, moved.state, moved.subject_key, moved.expert_id, moved.lab_id,
             moved.judgment_id, moved.resolution, moved.resolution_reason, moved.resolved_at, moved.evidence),
            (dispute.pk, "judgment_quality", "resolved", dispute.subject_key, dispute.expert_id, dispute.lab_id,
             dispute.judgment_id, "upheld", "The judgment stands.", AT, dispute.evidence))
        self.assertEqual(moved.judgment.task.external_id, "t-9")
        subjects = dict(Notification.objects.values_list("pk", "subject"))
        self.assertEqual(subjects, {**{note.pk: f"dispute:{dispute.pk}" for note in linked}, plain.pk: ""})

        content_type = ContentType.objects.get_for_model(Dispute)
        self.assertEqual((content_type.app_label, content_type.pk), ("moderation", type_id))
        self.assertEqual(content_type.permission_set.get(pk=grant.pk).codename, "resolve_escalated_dispute")

        # And back: the foreign key is restored from the subject keys.
        executor = _migrate(BEFORE)
        old = executor.loader.project_state(BEFORE[0]).apps
        links = dict(old.get_model("annotations", "Notification").objects.values_list("pk", "dispute_id"))
        self.assertEqual(links, {**{note.pk: dispute.pk for note in linked}, plain.pk: None})
        self.assertEqual(old.get_model("contenttypes", "ContentType").objects.get(pk=type_id).app_label,
                         "annotations")
