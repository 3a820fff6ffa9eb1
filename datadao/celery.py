"""Celery application.

With no broker configured the tasks run in-process (``task_always_eager``),
so the app works on a bare machine; with ``CELERY_BROKER_URL`` set, a real
worker (``celery -A datadao worker``) runs them.
"""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "datadao.settings")

app = Celery("datadao")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
