"""TradeEngage settings, read from the environment.

With no environment at all the project runs on the embedded default: a SQLite file in WAL mode
and kombu's filesystem broker under ``var/``. ``DATABASE_URL`` and ``REDIS_URL`` switch to
PostgreSQL and Redis. With ``DEBUG`` off, ``SECRET_KEY`` and ``FIELD_ENCRYPTION_KEYS`` must be
set.
"""

import base64
import hashlib
import ipaddress
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean, got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from exc


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_credentials(name: str, default: dict[str, str]) -> dict[str, str]:
    """``id:secret`` pairs, comma-separated, as secrets by id. The secret may hold colons; a
    malformed pair fails loudly, without echoing the secret."""
    if os.environ.get(name) is None:
        return dict(default)
    credentials = {}
    for position, pair in enumerate(env_list(name), start=1):
        credential_id, separator, secret = pair.partition(":")
        credential_id, secret = credential_id.strip(), secret.strip()
        if not separator or not credential_id or not secret:
            raise ImproperlyConfigured(f"{name}: pair {position} is not id:secret")
        if credential_id in credentials:
            raise ImproperlyConfigured(f"{name}: {credential_id!r} is given twice")
        credentials[credential_id] = secret
    return credentials


# The key of the embedded default (DEBUG only): derived from a fixed phrase, so it is public and
# protects nothing; it only lets a laptop run without configuration. Never used with DEBUG off.
DEVELOPMENT_FIELD_ENCRYPTION_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"tradeengage development field encryption key").digest()
).decode()


def field_encryption_keys(keys: list[str], *, debug: bool) -> list[str]:
    """The Fernet keys of the values encrypted at rest (tradeengage/encryption.py), newest first:
    the first encrypts, every one decrypts, so a key is rotated by putting a new one first and
    running ``manage.py rotate_encryption_keys``. They are not ``SECRET_KEY``: a leaked or
    rotated ``SECRET_KEY`` must neither expose nor lose the stored provider credentials."""
    if not keys:
        if not debug:
            raise ImproperlyConfigured(
                "FIELD_ENCRYPTION_KEYS must be set when DEBUG is off (comma-separated Fernet keys, "
                "newest first; make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            )
        return [DEVELOPMENT_FIELD_ENCRYPTION_KEY]
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            # The key itself stays out of the message: it is a secret.
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS: key {position} is not a Fernet key (32 url-safe "
                "base64-encoded bytes)"
            ) from None
    if not debug and DEVELOPMENT_FIELD_ENCRYPTION_KEY in keys:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS holds the public development key, which must not be used when "
            "DEBUG is off"
        )
    return keys


DEBUG = env_bool("DEBUG", default=True)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-for-debug-mode"
FIELD_ENCRYPTION_KEYS = field_encryption_keys(env_list("FIELD_ENCRYPTION_KEYS"), debug=DEBUG)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
APP_VERSION = "1.0.0"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    # Its abstract key model is ours' base; its own concrete model (and table) go unused.
    "rest_framework_api_key",
    "django_prometheus",
    "access",
    "jobs",
    "routing",
    "integrations",
    "processing",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "tradeengage.middleware.CorrelationIdMiddleware",
    # Puts X-RateLimit-* and RateLimit-Policy / RateLimit on every rate-limited response.
    "access.ratelimit.RateLimitHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "tradeengage.urls"
WSGI_APPLICATION = "tradeengage.wsgi.application"
APPEND_SLASH = False

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

# Database: PostgreSQL from DATABASE_URL, else a SQLite file that web and worker processes can
# write side by side (WAL, IMMEDIATE transactions so writers queue instead of failing to upgrade
# a read lock, and a busy timeout). Both through django-prometheus's backends, which count
# connections, queries and errors and time the queries (README "Metrics").
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("DB_CONN_MAX_AGE", 600),
            conn_health_checks=True,
        )
    }
    DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace(
        "django.db.backends.", "django_prometheus.db.backends.", 1
    )
    if env_bool("DB_PREPARED_STATEMENTS", True):
        # Parameters bound by the server, and a statement a connection has run a few times
        # prepared: planning our hot statements cost PostgreSQL more than running them. Turn
        # off behind a pooler in transaction mode that cannot keep prepared statements.
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=env_int("DB_PREPARE_THRESHOLD", 5)
        )
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django_prometheus.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(VAR_DIR / "tradeengage.sqlite3")),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Broker and cache: Redis from REDIS_URL, else the filesystem broker and a file-based cache.
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tradeengage",
        }
    }
else:
    BROKER_DIR = VAR_DIR / "broker"
    (BROKER_DIR / "queue").mkdir(parents=True, exist_ok=True)
    (BROKER_DIR / "processed").mkdir(parents=True, exist_ok=True)
    (BROKER_DIR / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://localhost/"
    # data_folder_in and data_folder_out must be the same folder, or messages are written where
    # no worker reads them.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# Celery: explicit queues by priority, late acks so a killed worker's task is redelivered,
# one message prefetched at a time, and time limits so nothing hangs a worker forever.
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 120)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 150)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_IGNORE_RESULT = True
# Celery's Django fixup closes the database connections around every task unless this is set;
# tradeengage/celery.py recycles them the way Django does between requests instead.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
# Workers log through LOGGING below, so task lines are structured like request lines.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = env_str("TIME_ZONE", "UTC")
CELERY_BEAT_SCHEDULER = "tradeengage.beat:OutageTolerantScheduler"
CELERY_TASK_ROUTES = {
    "routing.tasks.relay_outbox": {"queue": "critical"},
    "routing.tasks.sync_outbox_events": {"queue": "critical"},
    # Outbound webhooks on a queue of their own: a slow receiver never holds up a sync.
    "routing.tasks.deliver_webhooks": {"queue": "webhooks"},
    "routing.tasks.poll_provider_statuses": {"queue": "low"},
    "routing.tasks.poll_routing_statuses": {"queue": "low"},
    "routing.tasks.purge_history": {"queue": "low"},
    "routing.tasks.servicetitan_create_job": {"queue": "critical"},
    "routing.tasks.servicetitan_cancel_job": {"queue": "high"},
    "routing.tasks.servicetitan_update_status": {"queue": "default"},
    "integrations.tasks.servicetitan_health_check": {"queue": "low"},
    "jobs.tasks.ingest_items": {"queue": "default"},
    "processing.tasks.process_client": {"queue": "default"},
    "processing.tasks.run_nightly": {"queue": "default"},
    "processing.tasks.process_retry_queue": {"queue": "default"},
    "access.tasks.purge_idempotency_keys": {"queue": "low"},
    "access.tasks.record_api_key_uses": {"queue": "low"},
    "analytics.tasks.roll_up_daily_figures": {"queue": "low"},
}
# Copied into django-celery-beat's tables when beat starts; edit the intervals in the admin.
CELERY_BEAT_SCHEDULE = {
    "relay-outbox": {
        "task": "routing.tasks.relay_outbox",
        "schedule": env_int("OUTBOX_RELAY_INTERVAL_SECONDS", 5),
    },
    "poll-provider-statuses": {
        "task": "routing.tasks.poll_provider_statuses",
        "schedule": env_int("BACKSYNC_INTERVAL_SECONDS", 15),
    },
    # seed 004: the midnight run (TIME_ZONE) and the retry queue every 15 minutes.
    "nightly-client-processing": {
        "task": "processing.tasks.run_nightly",
        "schedule": crontab(minute=0, hour=0),
    },
    "client-processing-retry-queue": {
        "task": "processing.tasks.process_retry_queue",
        "schedule": crontab(minute="*/15"),
    },
    # API keys' last uses, noted in Redis by the rate limiter, written in bulk.
    "record-api-key-uses": {
        "task": "access.tasks.record_api_key_uses",
        "schedule": 60,
    },
    # Expired Idempotency-Key records (24 h old) only take room: requests ignore them.
    "purge-idempotency-keys": {
        "task": "access.tasks.purge_idempotency_keys",
        "schedule": crontab(minute=30),
    },
    # Finished work older than its retention (HISTORY_RETENTION_DAYS), after the midnight run.
    "purge-history": {
        "task": "routing.tasks.purge_history",
        "schedule": crontab(minute=45, hour=3),
    },
    # The dashboard's closed days, rolled up once each (and yesterday again).
    "roll-up-daily-figures": {
        "task": "analytics.tasks.roll_up_daily_figures",
        "schedule": crontab(minute=5),
    },
    "servicetitan-health-check": {
        "task": "integrations.tasks.servicetitan_health_check",
        "schedule": env_int("SERVICETITAN_HEALTH_CHECK_SECONDS", 60),
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Failed logins are throttled (django-axes): AXES_FAILURE_LIMIT failures for one username from one
# IP address lock that pair out for AXES_COOLOFF_MINUTES, the right password included. Its
# backend comes first so a locked-out pair never reaches the password check; it logs nobody in,
# so force_login still picks ModelBackend. It needs the request: the test client's login is
# called with request=HttpRequest().
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/lockout.html"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Without collectstatic (the embedded default), serve straight from the apps' static folders.
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "tradeengage.exceptions.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["tradeengage.parsers.JSONParser"],
    # Every API view needs a usable API key unless it says otherwise (the health probes, the
    # docs, and inbound webhooks, which are signed instead).
    "DEFAULT_AUTHENTICATION_CLASSES": ["access.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["access.authentication.HasApiKey"],
    "UNAUTHENTICATED_USER": None,
    # Rate limits by API key and plan (RATE_LIMIT_* below); requests without a usable key are
    # counted by the authentication itself.
    "DEFAULT_THROTTLE_CLASSES": ["access.ratelimit.ApiKeyRateThrottle"],
    "COERCE_DECIMAL_TO_STRING": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "TradeEngage Service Integration API",
    "DESCRIPTION": (
        "Job routing and field-service sync for home-service trade networks. "
        "Errors under /api/v1 share one shape: {detail, error_code, timestamp} "
        "plus errors[] of {field, message} for validation failures; seed 003's endpoints "
        "(/api/v1/ingestion/, /api/v1/matching/) answer {success: true, data} and "
        "{success: false, error: {code, message}}."
    ),
    "VERSION": APP_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # The one PATCH (a ServiceTitan job's status) is not a partial update: its status is
    # required, and the schema says so.
    "COMPONENT_SPLIT_PATCH": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The default hook, then the 429 of every rate-limited endpoint.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tradeengage.schema.document_rate_limits",
    ],
    "ENUM_NAME_OVERRIDES": {
        "SkillLevelEnum": "jobs.models.SkillLevel.choices",
        "SyncStatusEnum": "routing.models.SyncStatus.choices",
        "IngestionStatusEnum": "jobs.models.IngestionStatus.choices",
        "WebhookDeliveryStatusEnum": "routing.models.WebhookDeliveryStatus.choices",
    },
}

# Rate limits (access/ratelimit.py; seed 003 per plan, seed 000 for job creation and for requests
# without a valid key, per client address). Per plan: requests a minute, job creations a minute
# and an hour, and jobs ingested in batches an hour (each job of a batch counts), per API key;
# each overridable as RATE_LIMIT_<PLAN>_PER_MINUTE, _JOBS_PER_MINUTE, _JOBS_PER_HOUR and
# _INGESTED_JOBS_PER_HOUR. "benchmark" is for the benchmarks' servers
# (RATE_LIMIT_PLAN_OVERRIDE=benchmark puts every key on it): they measure job creation, not the
# limits, so its ceilings are never reached there, yet every request is still counted.
RATE_LIMIT_PLANS = {
    plan: {
        "requests_per_minute": env_int(f"RATE_LIMIT_{plan.upper()}_PER_MINUTE", requests),
        "job_creations_per_minute": env_int(f"RATE_LIMIT_{plan.upper()}_JOBS_PER_MINUTE", jobs),
        "job_creations_per_hour": env_int(f"RATE_LIMIT_{plan.upper()}_JOBS_PER_HOUR", hourly),
        "ingested_jobs_per_hour": env_int(
            f"RATE_LIMIT_{plan.upper()}_INGESTED_JOBS_PER_HOUR", ingested
        ),
    }
    for plan, requests, jobs, hourly, ingested in [
        ("free", 60, 10, 1000, 1000),
        ("pro", 300, 50, 1000, 10_000),
        ("enterprise", 1000, 200, 1000, 50_000),
        ("benchmark", 1_000_000, 1_000_000, 100_000_000, 100_000_000),
    ]
}


def env_rate_limit_plan(name: str, default: str = "") -> str:
    plan = env_str(name) or default
    if plan and plan not in RATE_LIMIT_PLANS:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(RATE_LIMIT_PLANS)}")
    return plan


# Operations' keys (and PROCESSING_API_KEYS) have no company: they are on this plan.
RATE_LIMIT_OPS_PLAN = env_rate_limit_plan("RATE_LIMIT_OPS_PLAN", "enterprise")
# When set, every key is on this plan whatever its company's.
RATE_LIMIT_PLAN_OVERRIDE = env_rate_limit_plan("RATE_LIMIT_PLAN_OVERRIDE")
# Requests without a usable key, per client address (REMOTE_ADDR; IPv6 by /64).
RATE_LIMIT_ANONYMOUS_PER_MINUTE = env_int("RATE_LIMIT_ANONYMOUS_PER_MINUTE", 100)
# django-ratelimit's own settings: on or off, the cache holding the counters, and when the cache
# fails, let requests through rather than refuse them all. It is not an installed app: its
# system check refuses the embedded default's file cache, where the limits are per machine.
RATELIMIT_ENABLE = env_bool("RATE_LIMIT_ENABLED", default=True)
RATELIMIT_USE_CACHE = "default"
RATELIMIT_FAIL_OPEN = True
RATELIMIT_IP_META_KEY = "access.ratelimit.client_address"

# Outbox: job creation kicks the relay at most once per window; the run starts at its end.
OUTBOX_KICK_WINDOW_SECONDS = env_float("OUTBOX_KICK_WINDOW_SECONDS", 1.0)
# The relay claims due events in batches of this size, at most this many batches per run (a
# run that fills them all starts the next run at once), and hands each batch to one sync task.
OUTBOX_RELAY_BATCH_SIZE = env_int("OUTBOX_RELAY_BATCH_SIZE", 50)
OUTBOX_RELAY_MAX_BATCHES = env_int("OUTBOX_RELAY_MAX_BATCHES", 20)
# A claimed event and its routing share one lease: OUTBOX_LEASE_SECONDS from the relay's claim,
# then from the sync task's start, renewed every OUTBOX_LEASE_RENEW_SECONDS by the worker
# holding it. When its worker dies, the lease runs out and a relay takes the event again.
OUTBOX_LEASE_SECONDS = env_int("OUTBOX_LEASE_SECONDS", 30)
OUTBOX_LEASE_RENEW_SECONDS = env_float("OUTBOX_LEASE_RENEW_SECONDS", OUTBOX_LEASE_SECONDS / 3)
# The relay keeps at most this many events claimed (queued for or held by a sync task); the
# rest wait in the outbox, so a batch never waits in the broker longer than its lease.
OUTBOX_MAX_IN_FLIGHT = env_int("OUTBOX_MAX_IN_FLIGHT", 1000)
# The task each type of outbox event is handed to, one task per claimed batch and type, enqueued
# by name (``args=[event_ids, claimed_at]``); a type with no task here is dead-lettered by the
# relay. Adding a type is one line here and a task that takes its batch (routing.outbox).
OUTBOX_EVENT_TASKS = {
    "job_sync": "routing.tasks.sync_outbox_events",
    "webhook_delivery": "routing.tasks.deliver_webhooks",
    "ingestion_chunk": "jobs.tasks.ingest_items",
}
# How many events of a type one task takes at most (else the whole claimed batch's): a chunk of
# ingestion is already 50 jobs' work, so each goes to a task of its own and the workers share a
# batch's chunks instead of one worker taking all of them.
OUTBOX_EVENTS_PER_TASK = {"ingestion_chunk": 1}

# Sync: the waits before the 2nd, 3rd, ... attempt (seed 001: 5 s, 10 s, 20 s); after the last,
# the routing fails and its event goes to the dead-letter queue.
SYNC_RETRY_BACKOFF_SECONDS = [
    float(seconds) for seconds in env_list("SYNC_RETRY_BACKOFF_SECONDS", ["5", "10", "20"])
]
# A provider's Retry-After is honoured up to this many seconds.
SYNC_MAX_RETRY_AFTER_SECONDS = env_int("SYNC_MAX_RETRY_AFTER_SECONDS", 3600)
# Each provider call must answer within this; POST /jobs/{id}/sync waits at most the second.
SYNC_PROVIDER_TIMEOUT_SECONDS = env_float("SYNC_PROVIDER_TIMEOUT_SECONDS", 30.0)
SYNC_REQUEST_TIMEOUT_SECONDS = env_float("SYNC_REQUEST_TIMEOUT_SECONDS", 10.0)
# Provider calls run side by side in this many threads per worker process, so slow providers'
# waits overlap instead of adding up (256 calls of 800 ms each: about 320 routings/s per
# process). The threads hold no database connection (the mock provider records its calls
# through a writer thread of its own), so PostgreSQL's connection limit does not bound them.
SYNC_CALL_CONCURRENCY = env_int("SYNC_CALL_CONCURRENCY", 256)
# At most this many calls to one company in flight per worker process; a sync hands the rest of
# that company's routings back, due again in SYNC_COMPANY_BUSY_DEFER_SECONDS, so one slow or
# hanging company cannot take every call thread (routing/services/calls.py).
SYNC_COMPANY_MAX_IN_FLIGHT = env_int("SYNC_COMPANY_MAX_IN_FLIGHT", 16)
SYNC_COMPANY_BUSY_DEFER_SECONDS = env_float("SYNC_COMPANY_BUSY_DEFER_SECONDS", 5.0)
# A sync stores its outcomes in groups as they come: what ended within this many seconds of a
# group's first outcome is stored with it, so a slow call delays only its own routing.
SYNC_RECORD_GROUP_SECONDS = env_float("SYNC_RECORD_GROUP_SECONDS", 0.05)
# A sync task waits this long for its calls; those still running then (a hanging provider)
# finish on a thread of their own, holding the lease, and the task's worker slot is free.
SYNC_TASK_WAIT_SECONDS = env_float("SYNC_TASK_WAIT_SECONDS", 2.0)
# A company without a provider: its routings wait (visibly) and are looked at again this often,
# unless SYNC_UNCONFIGURED_WITH_MOCK sends them through the mock provider.
SYNC_UNCONFIGURED_WITH_MOCK = env_bool("SYNC_UNCONFIGURED_WITH_MOCK", default=False)
SYNC_UNCONFIGURED_RECHECK_SECONDS = env_int("SYNC_UNCONFIGURED_RECHECK_SECONDS", 300)

# Back-sync by polling (webhooks are the fast path): every BACKSYNC_INTERVAL_SECONDS beat claims
# up to BACKSYNC_CLAIM_LIMIT synced routings due for a question (a full claim runs again at
# once) and enqueues one poll task per BACKSYNC_BATCH_SIZE routings of one company, each one
# batch call to its provider. A routing is asked again after a quarter of its age since it was
# synced, at least BACKSYNC_RECHECK_MIN_SECONDS and at most BACKSYNC_RECHECK_MAX_SECONDS.
BACKSYNC_INTERVAL_SECONDS = env_int("BACKSYNC_INTERVAL_SECONDS", 15)
BACKSYNC_CLAIM_LIMIT = env_int("BACKSYNC_CLAIM_LIMIT", 2000)
BACKSYNC_BATCH_SIZE = env_int("BACKSYNC_BATCH_SIZE", 100)
BACKSYNC_RECHECK_MIN_SECONDS = env_int("BACKSYNC_RECHECK_MIN_SECONDS", 60)
BACKSYNC_RECHECK_MAX_SECONDS = env_int("BACKSYNC_RECHECK_MAX_SECONDS", 4 * 3600)
if BACKSYNC_CLAIM_LIMIT < 1 or BACKSYNC_BATCH_SIZE < 1:
    raise ImproperlyConfigured("BACKSYNC_CLAIM_LIMIT and BACKSYNC_BATCH_SIZE must be at least 1")
if not 0 <= BACKSYNC_RECHECK_MIN_SECONDS <= BACKSYNC_RECHECK_MAX_SECONDS:
    raise ImproperlyConfigured(
        "BACKSYNC_RECHECK_MIN_SECONDS must be 0 or more, and at most BACKSYNC_RECHECK_MAX_SECONDS"
    )

# ServiceTitan (seed 001): the real API client is used when client id, secret, app key and tenant
# are set here or on the company's provider settings; otherwise the simulation.
SERVICETITAN = {
    "api_url": env_str("SERVICETITAN_API_URL", "https://api.servicetitan.io"),
    "auth_url": env_str("SERVICETITAN_AUTH_URL", "https://auth.servicetitan.io"),
    "client_id": env_str("SERVICETITAN_CLIENT_ID"),
    "client_secret": env_str("SERVICETITAN_CLIENT_SECRET"),
    "app_key": env_str("SERVICETITAN_APP_KEY"),
    "tenant_id": env_str("SERVICETITAN_TENANT_ID"),
    "booking_provider_id": env_str("SERVICETITAN_BOOKING_PROVIDER_ID"),
    # The job cancel reason cancellations are sent with; unset, the tenant's first active one.
    "cancel_reason_id": env_str("SERVICETITAN_CANCEL_REASON_ID"),
    "webhook_secret": env_str("SERVICETITAN_WEBHOOK_SECRET"),
    "requests_per_second": env_int("SERVICETITAN_REQUESTS_PER_SECOND", 60),
    # Requests' (connect, read) timeouts, each lowered to the sync engine's bound for a call.
    # Connect: just over TCP's 3 s retransmission window. Read: well under ServiceTitan's own
    # 100 s server timeout, as a create whose answer is lost is safely retried (externalId).
    "connect_timeout_seconds": env_float("SERVICETITAN_CONNECT_TIMEOUT_SECONDS", 3.05),
    "timeout_seconds": env_float("SERVICETITAN_TIMEOUT_SECONDS", 30.0),
    # The simulation: a random failure rate (seed 001: 5 % in the demo) and realistic delays.
    "simulation_failure_rate": env_float("SERVICETITAN_SIMULATION_FAILURE_RATE", 0.0),
    "simulation_delays": env_bool("SERVICETITAN_SIMULATION_DELAYS", default=False),
    "simulation_seed": env_str("SERVICETITAN_SIMULATION_SEED"),
}


def servicetitan_simulator_settings(*, debug: bool) -> tuple[bool, dict[str, str]]:
    """Whether the simulator's slice of ServiceTitan's API is mounted at /servicetitan-sim/, and
    the client credentials its token endpoint accepts. By default on, accepting the demo's
    Phoenix Garage Doors (seed_demo's ``demo_provider``), when DEBUG is on; off, accepting
    nobody, when it is off."""
    enabled = env_bool("SERVICETITAN_SIMULATOR_ENABLED", default=debug)
    demo_clients = {"demo-phoenix": "demo-secret"} if debug else {}
    return enabled, env_credentials("SERVICETITAN_SIMULATOR_CLIENTS", demo_clients)


SERVICETITAN_SIMULATOR_ENABLED, SERVICETITAN_SIMULATOR_CLIENTS = servicetitan_simulator_settings(
    debug=DEBUG
)
# ServiceTitan's 60 requests/s per app key and tenant; the simulator answers 429 above it.
SERVICETITAN_SIMULATOR_REQUESTS_PER_SECOND = env_int(
    "SERVICETITAN_SIMULATOR_REQUESTS_PER_SECOND", 60
)
# The simulated office: a booking converted into a job this many seconds after it was made, and
# the job completed and invoiced this many seconds after that; unset, never (only the admin and
# the simulator's office endpoints convert, dismiss and complete).
SERVICETITAN_SIMULATOR_CONVERT_AFTER_SECONDS = (
    env_float("SERVICETITAN_SIMULATOR_CONVERT_AFTER_SECONDS", 0)
    if os.environ.get("SERVICETITAN_SIMULATOR_CONVERT_AFTER_SECONDS")
    else None
)
SERVICETITAN_SIMULATOR_COMPLETE_AFTER_SECONDS = (
    env_float("SERVICETITAN_SIMULATOR_COMPLETE_AFTER_SECONDS", 0)
    if os.environ.get("SERVICETITAN_SIMULATOR_COMPLETE_AFTER_SECONDS")
    else None
)
# The CRM simulator (seed 002's API at /crm-sim/api/v2/, mounted with the ServiceTitan one):
# the client credentials its token endpoint accepts (id:secret pairs; the demo's by default when
# DEBUG is on, none otherwise), the clients that may only read (403 on writes), its rate limits
# per minute, and its webhook deliveries: waits before each retry, then give up, and the timeout.
CRM_SIMULATOR_CLIENTS = env_credentials(
    "CRM_SIMULATOR_CLIENTS", {"demo-crm": "demo-crm-secret"} if DEBUG else {}
)
CRM_SIMULATOR_READ_ONLY_CLIENTS = env_list("CRM_SIMULATOR_READ_ONLY_CLIENTS")
CRM_SIMULATOR_RATE_LIMIT_PER_MINUTE = env_int("CRM_SIMULATOR_RATE_LIMIT_PER_MINUTE", 1000)
CRM_SIMULATOR_UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE = env_int(
    "CRM_SIMULATOR_UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE", 100
)
CRM_SIMULATOR_WEBHOOK_RETRY_SECONDS = [
    float(seconds)
    for seconds in env_list("CRM_SIMULATOR_WEBHOOK_RETRY_SECONDS", ["5", "30", "120"])
]
CRM_SIMULATOR_WEBHOOK_TIMEOUT_SECONDS = env_float("CRM_SIMULATOR_WEBHOOK_TIMEOUT_SECONDS", 10)

# The mock provider's defaults; a company's provider_settings override them (integrations/mock.py).
MOCK_PROVIDER = {
    "latency_ms": env_int("MOCK_PROVIDER_LATENCY_MS", 0),
    "failure_rate": env_float("MOCK_PROVIDER_FAILURE_RATE", 0.0),
    "failure": env_str("MOCK_PROVIDER_FAILURE", "server_error"),
}
if os.environ.get("MOCK_PROVIDER_COMPLETE_AFTER_SECONDS"):
    MOCK_PROVIDER["complete_after_seconds"] = env_float("MOCK_PROVIDER_COMPLETE_AFTER_SECONDS", 0)

# CRM provider (seed 002) defaults; a company's provider settings override them (api_url,
# service_types, default_service_type, priority). Timeouts in seconds: (connect, read).
CRM = {
    "timeout_seconds": env_float("CRM_TIMEOUT_SECONDS", 30.0),
    "connect_timeout_seconds": env_float("CRM_CONNECT_TIMEOUT_SECONDS", 3.05),
    "default_service_type": env_str("CRM_DEFAULT_SERVICE_TYPE", "General Service"),
}
# Our own absolute URL base, for the webhook receiver URLs registered with providers.
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000")

# Client processing (seed 004): waits before each retry of a failed run, in hours (the first
# run and len() retries; then failed and an alert to OPS_ALERT_EMAILS), and the API keys of its
# endpoints (comma-separated; compared in constant time) until API keys have their own issue.
PROCESSING_RETRY_BACKOFF_HOURS = [
    float(hours) for hours in env_list("PROCESSING_RETRY_BACKOFF_HOURS", ["1", "2", "4"])
]
PROCESSING_API_KEYS = env_list("PROCESSING_API_KEYS")

# Matching: how many companies receive a routing for one job.
MATCH_LIMIT = env_int("MATCH_LIMIT", 3)
# Up to this many companies, one query ranks the whole network; above, area tiers are read in
# turn (jobs/matching.py). Both give the same ranking.
MATCH_SMALL_NETWORK_COMPANIES = env_int("MATCH_SMALL_NETWORK_COMPANIES", 2000)

# Batch ingestion (seed 003): the most jobs one batch may hold (more is a 413), and how many of
# a batch's jobs one worker task creates (a chunk: one outbox event, under one lease).
INGESTION_MAX_JOBS = env_int("INGESTION_MAX_JOBS", 500)
INGESTION_CHUNK_SIZE = env_int("INGESTION_CHUNK_SIZE", 50)

# Structured logs: one JSON object per line in production, readable lines in development.
LOG_FORMAT = env_str("LOG_FORMAT", "console" if DEBUG else "json")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "correlation_id": {"()": "tradeengage.logging.CorrelationIdFilter"},
        "task_arguments": {"()": "tradeengage.logging.TaskArgumentsFilter"},
    },
    "formatters": {
        "json": {"()": "tradeengage.logging.JsonFormatter"},
        "console": {
            "()": "tradeengage.logging.ConsoleFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s",
        },
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["correlation_id", "task_arguments"],
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.server": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
        # Failed logins and lockouts are warnings; its per-attempt housekeeping is not worth a line.
        "axes": {"level": "WARNING"},
    },
}

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "TradeEngage <noreply@tradeengage.local>")
OPS_ALERT_EMAILS = env_list("OPS_ALERT_EMAILS")

# Which companies have a webhook endpoint, as each process knows it: read again at most this
# often (a company's first endpoint hears events from at most this long after its creation).
WEBHOOK_ENDPOINT_COMPANIES_TTL_SECONDS = env_float("WEBHOOK_ENDPOINT_COMPANIES_TTL_SECONDS", 2.0)

# Outbound webhooks (README "Outbound webhooks"). The waits before the 2nd, 3rd, ... attempt
# (Svix's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h); after the last, the delivery is a
# dead letter. Only a 2xx within WEBHOOK_TIMEOUT_SECONDS counts. An endpoint whose every attempt
# has failed for WEBHOOK_DISABLE_AFTER_FAILING_DAYS is disabled and its company told by email.
WEBHOOK_RETRY_SCHEDULE_SECONDS = [
    float(seconds)
    for seconds in env_list(
        "WEBHOOK_RETRY_SCHEDULE_SECONDS", ["5", "300", "1800", "7200", "18000", "36000", "36000"]
    )
]
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 15.0)
WEBHOOK_DISABLE_AFTER_FAILING_DAYS = env_float("WEBHOOK_DISABLE_AFTER_FAILING_DAYS", 5.0)

# History retention (routing.services.retention, beat nightly): done outbox events, delivered
# webhooks, finished ingestion batches and inbound webhook receipts are deleted after
# HISTORY_RETENTION_DAYS, sync attempts (the admin's history of each routing, the dashboard's
# failed calls before they are rolled up) after SYNC_ATTEMPT_RETENTION_DAYS. Dead letters stay.
HISTORY_RETENTION_DAYS = env_float("HISTORY_RETENTION_DAYS", 30.0)
SYNC_ATTEMPT_RETENTION_DAYS = env_float("SYNC_ATTEMPT_RETENTION_DAYS", 90.0)
HISTORY_PURGE_BATCH_SIZE = env_int("HISTORY_PURGE_BATCH_SIZE", 5000)
if HISTORY_RETENTION_DAYS <= 0 or SYNC_ATTEMPT_RETENTION_DAYS <= 0 or HISTORY_PURGE_BATCH_SIZE < 1:
    raise ImproperlyConfigured(
        "HISTORY_RETENTION_DAYS and SYNC_ATTEMPT_RETENTION_DAYS must be positive, "
        "HISTORY_PURGE_BATCH_SIZE at least 1"
    )
# After a rotation the previous secret keeps signing beside the new one this long.
WEBHOOK_SECRET_OVERLAP_HOURS = env_float("WEBHOOK_SECRET_OVERLAP_HOURS", 24.0)
# SSRF (OWASP API7): https only, and public addresses only, unless these allow more (make run
# allows both, so the demo delivers to a local receiver). Names resolve within the timeout.
WEBHOOK_ALLOW_HTTP = env_bool("WEBHOOK_ALLOW_HTTP", default=DEBUG)
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env_bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=False)
WEBHOOK_DNS_TIMEOUT_SECONDS = env_float("WEBHOOK_DNS_TIMEOUT_SECONDS", 2.0)
# Deliveries of one batch are sent side by side in this many threads per worker process.
WEBHOOK_SEND_CONCURRENCY = env_int("WEBHOOK_SEND_CONCURRENCY", 16)

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^api/v1/health", r"^health/"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

# /api/v1/health/detailed's background checks (README "Operations"): unhealthy when no live worker
# consumes the critical queue or beat has not ticked for HEALTH_BEAT_MAX_AGE_SECONDS (both only
# with HEALTH_WORKERS_REQUIRED), or an outbox event has been due for longer than the last.
HEALTH_WORKERS_REQUIRED = env_bool("HEALTH_WORKERS_REQUIRED", default=True)
HEALTH_BEAT_MAX_AGE_SECONDS = env_int("HEALTH_BEAT_MAX_AGE_SECONDS", 60)
HEALTH_OUTBOX_MAX_DUE_AGE_SECONDS = env_int("HEALTH_OUTBOX_MAX_DUE_AGE_SECONDS", 300)

# Metrics at /metrics (README "Metrics"): who may scrape them, and how long queue_depth's reads
# of the broker and the outbox are reused.
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_ALLOWED_NETWORKS = [
    ipaddress.ip_network(network, strict=False)
    for network in env_list(
        "METRICS_ALLOWED_NETWORKS",
        ["0.0.0.0/0", "::/0"] if DEBUG else ["127.0.0.1/32", "::1/128"],
    )
]
METRICS_QUEUE_DEPTH_CACHE_SECONDS = env_float("METRICS_QUEUE_DEPTH_CACHE_SECONDS", 5.0)
