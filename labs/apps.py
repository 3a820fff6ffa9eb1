"""App configuration of the lab console: a lab's campaigns in the browser, through the services the API calls."""
from django.apps import AppConfig


class LabsConfig(AppConfig):
    name = "labs"
    verbose_name = "Lab console"
    default_auto_field = "django.db.models.BigAutoField"
