"""Settings shared by every environment, read from the environment.

With nothing set the app runs in development mode on SQLite with Celery tasks
executed in-process. ``DATABASE_URL`` (PostgreSQL) and ``CELERY_BROKER_URL``
(Redis) switch to real services. Production uses
``DJANGO_SETTINGS_MODULE=datadao.settings.production``, which refuses to start
without its secrets; the test suite uses ``datadao.settings.test`` (pytest.ini).
``datadao.settings`` itself is this module.
"""
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# Development-only fallback; production.py refuses to start without a real one.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-insecure-key-do-not-use-in-production")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    # Django admin on the moderators-only, audited site (moderation.admin_site).
    "datadao.apps.ModeratorAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    # Swagger UI and ReDoc as static files of the app: the API docs work offline.
    "drf_spectacular_sidecar",
    "axes",
    "annotations",
    "datavalue",
    "exports",
    "labs",
    "rewards",
    "moderation",
]

MIDDLEWARE = [
    # First, so every answer (a 500 from any layer below included) carries X-Request-ID.
    "datadao.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "datadao.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # API bodies over DATA_UPLOAD_MAX_MEMORY_SIZE: 413 before anything reads them.
    "datadao.middleware.ApiBodyLimitMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "annotations.audit.AuditContextMiddleware",
    # Login lockouts; must stay last.
    "axes.middleware.AxesMiddleware",
]

# django-axes watches every password login (pages and admin) and refuses a
# username from an address after AXES_FAILURE_LIMIT failures for the
# cool-off; it must come first among the backends.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "datadao.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "datadao.wsgi.application"


def database_test_name(database: str, override: str = "") -> str:
    """The test database: ``DATABASE_TEST_NAME`` when set, else ``test_`` + DATABASE_URL's database, so two
    checkouts on one server, each with its own database, never share (and drop) one test database."""
    return override or f"test_{database}"


DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault("ATOMIC_REQUESTS", False)
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("TEST", {})["NAME"] = database_test_name(
        DATABASES["default"]["NAME"], env.str("DATABASE_TEST_NAME", default="")
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = env.path("DATADAO_MEDIA_ROOT", default=BASE_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

LOGIN_URL = "login"
# Five wrong passwords for one username from one address lock that pair out
# for 15 minutes (answered 429); a success resets the count. Addresses are
# read like the audit trail reads them (DATADAO_TRUSTED_PROXIES).
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "annotations.audit.client_ip"
# Proxies in front of the app that append to X-Forwarded-For (0: use REMOTE_ADDR).
DATADAO_TRUSTED_PROXIES = env.int("DATADAO_TRUSTED_PROXIES", default=0)

# Sessions: a working day, renewed while in use; cookies never readable by scripts.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 60 * 60)
SESSION_SAVE_EVERY_REQUEST = False
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True  # no page script reads the token; forms carry it
CSRF_COOKIE_SAMESITE = "Lax"
# Content-Security-Policy for pages (datadao.middleware): scripts and style
# blocks need the per-request nonce; nothing loads from other origins.
DATADAO_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'", "'nonce'"],
    "style-src": ["'self'", "'nonce'"],
    "style-src-attr": ["'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
# Disputes may be opened this many days after the decision they contest.
DATADAO_DISPUTE_WINDOW_DAYS = env.int("DATADAO_DISPUTE_WINDOW_DAYS", default=30)
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Uploads: request bodies parsed in memory are capped; task files stream to
# disk and are capped separately (DATADAO_MAX_IMPORT_BYTES), answering 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=64 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATADAO_MAX_IMPORT_BYTES = env.int("DATADAO_MAX_IMPORT_BYTES", default=1024 * 1024 * 1024)
DATADAO_MAX_IMPORT_ERRORS = 100
# Report imported prompts that repeat earlier tasks' (costs ~1 us a row while validating, ~2% of an import).
DATADAO_IMPORT_REPORT_DUPLICATES = env.bool("DATADAO_IMPORT_REPORT_DUPLICATES", default=True)

# Token amounts are integers in base units; this many decimals make one token.
DATADAO_TOKEN_DECIMALS = env.int("DATADAO_TOKEN_DECIMALS", default=6)
DATADAO_TOKEN_SYMBOL = env.str("DATADAO_TOKEN_SYMBOL", default="DDF")
# Rewards: unbonded stake stays slashable this long before it is released.
DATADAO_UNBONDING_DAYS = env.int("DATADAO_UNBONDING_DAYS", default=7)
# Smallest bonded stake an expert may hold (an unbond leaves 0 or at least this); base units.
DATADAO_MIN_STAKE = env.int("DATADAO_MIN_STAKE", default=10**DATADAO_TOKEN_DECIMALS)
DATADAO_EPOCH_DAYS = env.int("DATADAO_EPOCH_DAYS", default=7)
# Settlement judges an expert's agreement over their epoch and this many epochs before it, so one noisy
# epoch does not zero a long honest record (pay still counts only the epoch's own judgments).
DATADAO_QUALITY_HISTORY_EPOCHS = env.int("DATADAO_QUALITY_HISTORY_EPOCHS", default=1)
# Payouts committed per database transaction while settling an epoch.
DATADAO_SETTLEMENT_CHUNK = env.int("DATADAO_SETTLEMENT_CHUNK", default=2000)
# Secret for pseudonymous per-campaign rater handles shown to labs.
DATADAO_HANDLE_SECRET = env.str("DATADAO_HANDLE_SECRET", default=SECRET_KEY)
DATADAO_LEASE_MINUTES = env.int("DATADAO_LEASE_MINUTES", default=20)
# A Next leases a task drawn at random from this many most-needed ones (closest
# to completion first). Handing out the single most-needed task lets accounts of
# a ring that press Next one after another land on the same task and outvote its
# honest raters; among 32, two such presses share a task about 1 time in 32,
# while tasks still finish roughly in order. 1 restores the strict order.
DATADAO_ASSIGN_WINDOW = env.int("DATADAO_ASSIGN_WINDOW", default=32)
# Gold is the anchor no ring can outvote, so a new account must show ground
# truth early: an expert with fewer than DATADAO_NEW_EXPERT_GOLD_ANSWERS scored
# gold answers (all campaigns, voided ones left out), or flagged in the campaign,
# gets gold at least this often (a campaign without gold keeps none).
DATADAO_NEW_EXPERT_GOLD_RATE = env.float("DATADAO_NEW_EXPERT_GOLD_RATE", default=0.3)
DATADAO_NEW_EXPERT_GOLD_ANSWERS = env.int("DATADAO_NEW_EXPERT_GOLD_ANSWERS", default=10)
# Qualification: gold items per test, share right to pass, wait before a retry.
DATADAO_QUALIFICATION_ITEMS = env.int("DATADAO_QUALIFICATION_ITEMS", default=5)
DATADAO_QUALIFICATION_PASS_MARK = env.float("DATADAO_QUALIFICATION_PASS_MARK", default=0.8)
DATADAO_QUALIFICATION_RETRY_HOURS = env.int("DATADAO_QUALIFICATION_RETRY_HOURS", default=24)
# Exports: files under this folder (one subfolder per campaign and export).
DATADAO_EXPORT_ROOT = env.str("DATADAO_EXPORT_ROOT", default=str(Path(str(MEDIA_ROOT)) / "exports"))
# Tasks read per keyset page (one short transaction each) while building an export.
DATADAO_EXPORT_CHUNK = env.int("DATADAO_EXPORT_CHUNK", default=1000)
# Tokenizers a lab may name for a tokenizer-aware export: registered names
# (name=/path,name2=/path2), or a path inside one of the roots. Only local
# files are read; nothing is fetched from a model hub.
DATADAO_TOKENIZERS = env.dict("DATADAO_TOKENIZERS", default={})
DATADAO_TOKENIZER_ROOTS = env.list("DATADAO_TOKENIZER_ROOTS", default=[str(Path(str(MEDIA_ROOT)) / "tokenizers")])
# Causal-LM checkpoints a lab may name for candidate generation (prompt-only
# tasks): registered names (name=/path,...) or a directory inside one of the
# roots. Local files only, and never the checkpoint's own code.
DATADAO_CHECKPOINTS = env.dict("DATADAO_CHECKPOINTS", default={})
DATADAO_CHECKPOINT_ROOTS = env.list("DATADAO_CHECKPOINT_ROOTS", default=[str(Path(str(MEDIA_ROOT)) / "checkpoints")])

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "datadao.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "datadao.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "datadao.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "datadao.api.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "assignment": env.str("DATADAO_THROTTLE_ASSIGNMENT", default="600/min"),
        "import": env.str("DATADAO_THROTTLE_IMPORT", default="60/min"),
        "dispute": env.str("DATADAO_THROTTLE_DISPUTE", default="30/hour"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "DataDAO Feedback API",
    "DESCRIPTION": "Expert human feedback on AI outputs: campaigns, tasks, judgments, exports, rewards.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs pages load Swagger UI and ReDoc from the app's static files (drf-spectacular-sidecar), no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The README's examples on the key operations (datadao/schema_examples.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums", "datadao.schema_examples.add_examples",
    ],
    # Export formats appear as model choices (with labels) in outputs and as plain values in the export and
    # purchase requests: one name for each set.
    "ENUM_NAME_OVERRIDES": {
        "ExportFormatEnum": "exports.models.Export.Format",
        "ExportFileFormatEnum": "exports.models.Export.FileFormat",
        "ExportRequestFormatEnum": "exports.formats.FORMATS",
        "ExportRequestFileFormatEnum": ["jsonl", "parquet"],
    },
}

CACHES = {
    "default": env.cache("CACHE_URL", default="locmemcache://"),
}

# Celery: eager in-process without a broker; at-least-once delivery with one.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE: dict = {
    # Leases left to expire go back to their tasks; assignment_next also
    # reclaims lazily, so this only keeps counts fresh between requests.
    "annotations.leases_reclaim": {"task": "annotations.leases_reclaim", "schedule": 60.0},
    "rewards.epochs_roll": {"task": "rewards.epochs_roll", "schedule": 15 * 60.0},
    # On-chain rewards (off unless CHAIN_RPC_URL is set): the cumulative root of the settled epochs.
    "rewards.chain_publish_root": {"task": "rewards.chain_publish_root", "schedule": 15 * 60.0},
    # ... and the distributor's Claimed events into the ledger (claimed on-chain), from where it stopped.
    "rewards.chain_index_claims": {"task": "rewards.chain_index_claims", "schedule": 5 * 60.0},
    "rewards.unbonding_release_due": {"task": "rewards.unbonding_release_due", "schedule": 10 * 60.0},
    # Campaign agreement, rater reliabilities and signals; a campaign whose
    # inputs did not change since its last report is skipped after one read.
    "annotations.quality_recompute_open_campaigns": {
        "task": "annotations.quality_recompute_open_campaigns", "schedule": 10 * 60.0,
    },
    # Embeddings and data value of running campaigns; only campaigns whose
    # inputs changed since their last computation are queued (datavalue.tasks, named as before the move).
    "annotations.data_value_refresh_open_campaigns": {
        "task": "annotations.data_value_refresh_open_campaigns", "schedule": 60 * 60.0,
    },
    # Data purchases whose export finished but whose settle task gave up.
    "rewards.purchases_settle_due": {"task": "rewards.purchases_settle_due", "schedule": 10 * 60.0},
    # Consensus of completed tasks whose job was lost (failed publish, retries spent in a database outage):
    # every Task.consensus_due_at older than 30 s (annotations/followup.py).
    "annotations.consensus_due_sweep": {"task": "annotations.consensus_due_sweep", "schedule": 60.0},
    # Exports: temporary files left by killed builds (older than an hour) go; builds that stopped
    # reporting (killed worker) or never started (lost message) are queued again.
    "annotations.exports_sweep": {"task": "annotations.exports_sweep", "schedule": 5 * 60.0},
}
# Redis redelivers a task that was fetched but never acknowledged (worker
# killed) once it has been invisible this long; the restore sweep runs about
# every interval * throttle seconds. Five minutes, so a killed job resumes
# within minutes rather than an hour. A job still running past it is
# delivered a second time, so long jobs are built for that: every task is
# safe to run twice; an export build reports a heartbeat (Export.heartbeat_at)
# at least every page and a second delivery of a build whose heartbeat is
# fresh returns at once (the exports sweep restarts one whose heartbeat went
# silent); the consensus sweep stops starting tasks after 40 s; quality
# compute rewrites its results whole, under its input fingerprint, so a
# second delivery repeats work but changes nothing; embedding stores each
# batch as it goes, so a second delivery only encodes what is still missing;
# rewards retries wait up to 600 s, and a redelivered retry only settles an
# idempotent settlement twice.
# Publishing: one connection attempt (max_retries 0) and short socket
# timeouts, so a request never waits seconds on a broker that is down;
# work that must not be lost has a durable record and a sweep instead.
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=300),
    "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_INTERVAL", default=10),
    "unacked_restore_throttle": env.int("CELERY_UNACKED_RESTORE_THROTTLE", default=10),
    "max_retries": 0,
    "socket_connect_timeout": env.float("CELERY_BROKER_SOCKET_CONNECT_TIMEOUT", default=2.0),
    "socket_timeout": env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=5.0),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="WARNING")},
}

# Rewards on-chain (rewards/chain.py, contracts/): empty CHAIN_RPC_URL keeps rewards in the ledger. The
# treasury's key comes from the environment only, never the database.
CHAIN_RPC_URL = env.str("CHAIN_RPC_URL", default="")
CHAIN_TREASURY_KEY = env.str("CHAIN_TREASURY_KEY", default="")
CHAIN_TOKEN_ADDRESS = env.str("CHAIN_TOKEN_ADDRESS", default="")
CHAIN_DISTRIBUTOR_ADDRESS = env.str("CHAIN_DISTRIBUTOR_ADDRESS", default="")
# The claims indexer reads events this many blocks behind the head (a reorg deeper than that would need
# a re-index), starting at the distributor's deployment block.
CHAIN_CONFIRMATIONS = env.int("CHAIN_CONFIRMATIONS", default=0)
CHAIN_CLAIMS_FROM_BLOCK = env.int("CHAIN_CLAIMS_FROM_BLOCK", default=0)
