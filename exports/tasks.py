"""Exports' Celery jobs; their names keep the ``annotations.`` prefix they had before the app's split (beat and
queued messages use them)."""
from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from exports import services as export_services


# Exports. A done or failed export is never rebuilt, and a second
# delivery of a build whose run is alive (fresh heartbeat) returns at once,
# so a redelivered message is harmless; only a database hiccup is retried.
@shared_task(bind=True, name="annotations.export_build", ignore_result=True, autoretry_for=(OperationalError,),
             retry_backoff=True, max_retries=5)
def export_build(self, export_id: int) -> None:
    """Build one export's files, card and checksums."""
    try:
        export_services.export_build(export_id=export_id)
    except OperationalError:
        if self.request.retries >= self.max_retries:
            export_services.export_fail(export_id=export_id, error="the database was unavailable; request it again.")
        raise


@shared_task(name="annotations.export_bundle_build", ignore_result=True, autoretry_for=(OperationalError,),
             retry_backoff=True, max_retries=5)
def export_bundle_build(export_id: int) -> None:
    """The zip bundle of a done export built before bundles came with the build."""
    export_services.export_bundle_write(export_id=export_id)


@shared_task(name="annotations.exports_sweep", ignore_result=True)
def exports_sweep() -> dict:
    """Remove stale export temporary files; queue again silent or never-started builds (by beat)."""
    return export_services.exports_sweep()
