"""App configuration of the exports app: dataset exports of a campaign's preference data."""
from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "exports"
    verbose_name = "Exports"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register the Celery tasks, so services can queue them by name (datadao.jobs) in any process.
        from exports import tasks  # noqa: F401
