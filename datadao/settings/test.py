"""The test suite's settings (pytest.ini): the base settings, with what only tests want."""
from datadao.settings.base import *  # noqa: F401,F403

# Factories hash a password per user; the real hasher takes ~0.3 s a user.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
