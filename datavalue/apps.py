"""App configuration of the data-value app."""
from django.apps import AppConfig


class DatavalueConfig(AppConfig):
    name = "datavalue"
    verbose_name = "Data value"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register the Celery tasks, so services can queue them by name (datadao.jobs) in any process.
        from datavalue import tasks  # noqa: F401
