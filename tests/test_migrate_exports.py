"""Moving Export to the exports app keeps every export, the data purchase that points at it, and the permissions.

The database is taken back to before the move (annotations at 0017, exports unapplied, rewards at 0008), an
export and a purchase of it are written through the historical models, and migrating forward must show the
same export through ``exports.models`` with the purchase still attached, and the export content type under
``exports``. Runs on SQLite and on PostgreSQL; the database is left migrated.
"""
from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TransactionTestCase

from exports.models import Export
from rewards.models import DataPurchase

BEFORE = [("annotations", "0017_notification_subject_dispute_moved"), ("exports", None),
          ("rewards", "0008_claim_adjustment_pending")]


def _migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()  # what is applied now
    return executor


class ExportMoveTest(TransactionTestCase):

    def tearDown(self) -> None:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
        ContentType.objects.clear_cache()
        super().tearDown()

    def test_exports_purchases_and_permissions_follow_the_model(self) -> None:
        executor = _migrate(BEFORE)
        old = executor.loader.project_state(BEFORE[0]).apps
        with self.assertRaises(LookupError):
            old.get_model("exports", "Export")
        User = old.get_model("auth", "User")
        user = User.objects.create(username="lab-lee-exp")
        Lab = old.get_model("annotations", "Lab")
        seller, buyer = Lab.objects.create(name="Seller", slug="seller"), Lab.objects.create(name="Buyer", slug="buyer")
        campaign = old.get_model("annotations", "Campaign").objects.create(lab=seller, name="Sold", domain="law")
        export = old.get_model("annotations", "Export").objects.create(
            campaign=campaign, requested_by=user, format="trl_preference", file_format="jsonl", state="done",
            params={"min_margin": 0.5}, stats={"rows": 3}, rows_train=3, sha256_train="a" * 64)
        purchase = old.get_model("rewards", "DataPurchase").objects.create(
            buyer=buyer, campaign=campaign, export=export, bought_by=user, price=7, fee_bps=500,
            use="research", licence="cc-by-4.0")
        OldContentType = old.get_model("contenttypes", "ContentType")
        type_id = OldContentType.objects.get_or_create(app_label="annotations", model="export")[0].pk
        grant = old.get_model("auth", "Permission").objects.get_or_create(
            content_type_id=type_id, codename="view_export", defaults={"name": "Can view export"})[0]

        _migrate(executor.loader.graph.leaf_nodes())
        ContentType.objects.clear_cache()

        moved = Export.objects.get()
        self.assertEqual(
            (moved.pk, moved.campaign_id, moved.requested_by_id, moved.format, moved.state, moved.params,
             moved.stats, moved.rows_train, moved.sha256_train),
            (export.pk, campaign.pk, user.pk, "trl_preference", "done", {"min_margin": 0.5}, {"rows": 3}, 3,
             "a" * 64))
        self.assertEqual(DataPurchase.objects.get().export, moved)
        self.assertEqual(moved.purchase.pk, purchase.pk)
        self.assertEqual(list(moved.campaign.exports.values_list("pk", flat=True)), [export.pk])
        content_type = ContentType.objects.get_for_model(Export)
        self.assertEqual((content_type.app_label, content_type.pk), ("exports", type_id))
        self.assertEqual(content_type.permission_set.get(pk=grant.pk).codename, "view_export")
