"""Quality jobs on PostgreSQL: the binary COPY loader, and two jobs racing on one campaign."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from django.db import connection

from annotations.models import QualityReport, RaterQuality, TaskConsensus
from annotations.quality import loading, services
from tests.annotations.quality_crowds import planted_campaign

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


def test_copy_loader_reads_the_same_columns_as_values_list():
    campaign, _, _ = planted_campaign()
    queryset, names = loading.judgment_columns(campaign.pk, 2)
    copied = loading._read_int_columns(queryset, len(names))
    plain = np.array(list(queryset), dtype=np.int64)
    assert copied.shape == plain.shape and copied.shape[0] > 1000
    order_a, order_b = np.argsort(copied[:, 0]), np.argsort(plain[:, 0])
    assert (copied[order_a] == plain[order_b]).all()
    judgments, _ = loading.load_judgments(campaign.pk, 2)
    assert judgments.outside.sum() > 5 and (judgments.gold_correct >= 0).sum() == 25 * 13


def test_two_jobs_racing_write_one_report_and_no_duplicates():
    campaign, _, _ = planted_campaign()
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run():
        try:
            start.wait()
            services.campaign_quality_compute(campaign_id=campaign.pk)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert QualityReport.objects.filter(campaign=campaign).count() == 1
    assert RaterQuality.objects.filter(campaign=campaign).count() == 19
    assert TaskConsensus.objects.filter(campaign=campaign).count() == 160
