"""``DJANGO_SETTINGS_MODULE=datadao.settings``: development and the demo (:mod:`datadao.settings.base`).

The other environments: ``datadao.settings.production`` and ``datadao.settings.test``.
"""
from datadao.settings.base import *  # noqa: F401,F403
from datadao.settings.base import database_test_name, env  # noqa: F401 (named for importers)
