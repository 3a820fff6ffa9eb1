from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "annotations"
    verbose_name = "Annotations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Audit receivers (logins, failed logins, lockouts): recording only.
        from annotations import audit  # noqa: F401
        # The admin beyond annotations/admin.py (each module builds on admin.py's classes).
        from annotations import admin_quality, admin_tokens  # noqa: F401
        # Register the Celery tasks, so services can queue them by name (datadao.jobs) in any process.
        from annotations import tasks  # noqa: F401
