"""Django settings for Chameleon, read from the environment (and `CONFIG_PATH`) by `Env`.

With nothing set, everything runs on one machine: SQLite under `var/`, a filesystem Celery
broker and an in-memory channel layer. `DATABASE_URL`, `REDIS_URL`, `KAFKA_BROKERS` and
`ETCD_ENDPOINTS` switch to real services; see the README's configuration table.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from pathlib import Path

import dj_database_url

from chameleon_site.env import ConfigError, Env, project_root

env = Env()
BASE_DIR = project_root()

CHAMELEON_ENV = env.choice("CHAMELEON_ENV", "development", ("development", "production", "test"))
IS_PRODUCTION = CHAMELEON_ENV == "production"
DEBUG = env.bool("DEBUG", CHAMELEON_ENV == "development")
if IS_PRODUCTION and DEBUG:
    raise ConfigError("DEBUG", "must be off when CHAMELEON_ENV=production")

DATA_DIR = Path(env.str("CHAMELEON_DATA_DIR", str(BASE_DIR / "var"))).resolve()
try:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
except OSError as exc:
    raise ConfigError("CHAMELEON_DATA_DIR", f"cannot create {str(DATA_DIR)!r}: {exc.strerror}") from None


def _local_secret_key() -> str:
    """A per-checkout key kept under var/, so development sessions survive restarts."""
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY")
if not SECRET_KEY:
    if IS_PRODUCTION:
        raise ConfigError("SECRET_KEY", "is required when CHAMELEON_ENV=production")
    SECRET_KEY = _local_secret_key()
elif IS_PRODUCTION and (len(SECRET_KEY) < 32 or SECRET_KEY.startswith("django-insecure")):
    raise ConfigError("SECRET_KEY", "must be a random value of at least 32 characters in production")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", IS_PRODUCTION)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

SERVICE_NAME = env.str("SERVICE_NAME", "chameleon")
HTTP_PORT = env.int("HTTP_PORT", 8080, minimum=1, maximum=65535)
# Web server processes (`manage.py serve`): a process runs Python on one core at a time
# (the GIL), so one per core, up to 4, by default. Each is a web node of its own.
WEB_WORKERS = env.int("WEB_WORKERS", min(os.cpu_count() or 1, 4), minimum=1, maximum=64)
LOG_LEVEL = env.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "warn", "error", "critical"))
LOG_FORMAT = env.choice("LOG_FORMAT", "console", ("console", "json"))
REDIS_URL = env.redis_url()
KAFKA_BROKERS = env.host_ports("KAFKA_BROKERS")
ETCD_ENDPOINTS = env.host_ports("ETCD_ENDPOINTS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_celery_results",
    "django_prometheus",
    "core",
    "plugins_app",
    "plugins_app.events",
    "plugins_app.discovery",
    "scheduler_app",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "plugins_app.http.PluginMiddleware",  # running middleware plugins, by priority
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "chameleon_site.urls"
ASGI_APPLICATION = "chameleon_site.asgi.application"

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

# --- Database -------------------------------------------------------------------------
# django-prometheus wraps each backend so query counts and latencies reach /metrics; the
# core.db ones also keep connections between requests in web processes (core/db/).
_PROMETHEUS_ENGINES = {
    "django.db.backends.postgresql": "core.db.backends.postgresql",
    "django.db.backends.mysql": "django_prometheus.db.backends.mysql",
    "django.db.backends.sqlite3": "core.db.backends.sqlite3",
}
DATABASE_URL = env.str("DATABASE_URL")
if DATABASE_URL:
    try:
        _database = dj_database_url.parse(DATABASE_URL, conn_health_checks=True)
    except Exception as exc:  # dj-database-url raises several types for a bad URL
        raise ConfigError("DATABASE_URL", f"cannot be parsed ({exc})") from None
    if _database.get("ENGINE") not in _PROMETHEUS_ENGINES:
        raise ConfigError("DATABASE_URL", "must be a postgres://, mysql:// or sqlite:// URL")
    _database["ENGINE"] = _PROMETHEUS_ENGINES[_database["ENGINE"]]
else:
    _database = {
        "ENGINE": _PROMETHEUS_ENGINES["django.db.backends.sqlite3"],
        "NAME": DATA_DIR / "chameleon.sqlite3",
    }
if _database["ENGINE"].endswith("postgresql") and importlib.util.find_spec("psycopg_pool"):
    # Django's pool (psycopg_pool), used by web processes only (core/db/backends/postgresql).
    # A request holds a connection from its first query to its end; more concurrent
    # requests than max_size wait up to `timeout` seconds for one.
    _database.setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": 10, "timeout": 30}
if _database["ENGINE"].endswith("sqlite3"):
    # WAL lets the web, worker and beat processes read while one writes; IMMEDIATE
    # transactions take the write lock up front instead of failing to upgrade it.
    _database["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so processes a test starts share the test database.
    _database["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, channel layer, Celery -------------------------------------------------------
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    # Files, not process memory: web processes, workers and the CLI share what is cached
    # (the permission sets of core/backends.py are invalidated from any of them).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": 10_000},
        }
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    BROKER_DIR = DATA_DIR / "broker"
    for _folder in ("queue", "control", "processed"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "polling_interval": 0.1,
    }
    CELERY_RESULT_BACKEND = "django-db"

CELERY_TIMEZONE = "UTC"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", 2, minimum=1, maximum=256)
CELERY_BEAT_SCHEDULER = "scheduler_app.beat:ChameleonScheduler"

# --- Chameleon's own settings (read through core.conf.chameleon_settings) --------------
CHAMELEON = {
    "ENV": CHAMELEON_ENV,
    "SERVICE_NAME": SERVICE_NAME,
    "VERSION": "0.1.0",
    "DATA_DIR": str(DATA_DIR),
    "HTTP_PORT": HTTP_PORT,
    "REDIS_URL": REDIS_URL,
    "KAFKA_BROKERS": KAFKA_BROKERS,
    "ETCD_ENDPOINTS": ETCD_ENDPOINTS,
    "PLUGIN_DIRS": env.list("CHAMELEON_PLUGIN_DIRS", separators=",:"),
    "NODE_NAME": env.str("CHAMELEON_NODE_NAME"),
    # This process's node labels (`zone=a,canary=true`): a plugin canary picks nodes by them.
    "NODE_LABELS": env.labels("CHAMELEON_NODE_LABELS"),
    "HEARTBEAT_INTERVAL": env.float("CHAMELEON_HEARTBEAT_INTERVAL", 5.0, minimum=0.1),
    "METRICS_PUBLIC": env.bool("CHAMELEON_METRICS_PUBLIC", False),
    # Scheduler: beat's longest sleep between due checks, the active-beat lease, retention.
    "SCHEDULER_TICK": env.float("CHAMELEON_SCHEDULER_TICK", 0.25, minimum=0.01),
    "SCHEDULER_LEASE_TTL": env.float("CHAMELEON_SCHEDULER_LEASE_TTL", 10.0, minimum=0.5),
    "SCHEDULER_REQUEUE_AFTER": env.float("CHAMELEON_SCHEDULER_REQUEUE_AFTER", 60.0, minimum=1.0),
    "SCHEDULER_RUN_RETENTION_DAYS": env.float("CHAMELEON_SCHEDULER_RUN_RETENTION_DAYS", 30.0, minimum=0.0),
    "SCHEDULER_HANDLER_MODULES": env.list("CHAMELEON_SCHEDULER_HANDLER_MODULES"),
    # Event bus: transport (auto = Redis, else Kafka, else the database), stream/topic name,
    # retention of stored events, bounded queues, handler timeout, websocket buffer/backlog.
    "EVENT_TRANSPORT": env.choice("CHAMELEON_EVENT_TRANSPORT", "auto", ("auto", "database", "redis", "kafka")),
    "EVENT_STREAM": env.str("CHAMELEON_EVENT_STREAM", "chameleon:events"),
    "EVENT_RETENTION_DAYS": env.float("CHAMELEON_EVENT_RETENTION_DAYS", 7.0, minimum=0.0),
    "EVENT_QUEUE_SIZE": env.int("CHAMELEON_EVENT_QUEUE_SIZE", 10_000, minimum=1),
    "EVENT_WORKERS": env.int("CHAMELEON_EVENT_WORKERS", 4, minimum=1, maximum=256),
    "EVENT_HANDLER_TIMEOUT": env.float("CHAMELEON_EVENT_HANDLER_TIMEOUT", 10.0, minimum=0.001),
    "EVENT_POLL_INTERVAL": env.float("CHAMELEON_EVENT_POLL_INTERVAL", 0.1, minimum=0.01),
    "EVENT_WS_BUFFER": env.int("CHAMELEON_EVENT_WS_BUFFER", 1000, minimum=1),
    "EVENT_BACKLOG": env.int("CHAMELEON_EVENT_BACKLOG", 100, minimum=0, maximum=1000),
    # Outbox sweeper: undispatched events older than the grace period are re-sent by any
    # node (the publisher may have died); each node looks every sweep interval.
    "EVENT_OUTBOX_GRACE": env.float("CHAMELEON_EVENT_OUTBOX_GRACE", 30.0, minimum=0.0),
    "EVENT_OUTBOX_SWEEP_INTERVAL": env.float("CHAMELEON_EVENT_OUTBOX_SWEEP_INTERVAL", 20.0, minimum=0.05),
    # Plugin runtime: extra plugin modules (built-ins always load), config seeds, intervals.
    "PLUGIN_MODULES": env.list("CHAMELEON_PLUGIN_MODULES"),
    "PLUGIN_CONFIG_DIR": env.str("CHAMELEON_PLUGIN_CONFIG_DIR", str(BASE_DIR / "config" / "plugins")),
    "PLUGIN_RECONCILE_INTERVAL": env.float("CHAMELEON_PLUGIN_RECONCILE_INTERVAL", 1.0, minimum=0.05),
    "PLUGIN_HEALTH_INTERVAL": env.float("CHAMELEON_PLUGIN_HEALTH_INTERVAL", 15.0, minimum=0.1),
    "HOT_RELOAD": env.bool("CHAMELEON_HOT_RELOAD", False),
    "PLUGIN_AUTO_RESTART": env.bool("CHAMELEON_PLUGIN_AUTO_RESTART", False),
    # Service management: etcd key prefix, default instance TTL, monitor and alert intervals.
    "ETCD_PREFIX": env.str("CHAMELEON_ETCD_PREFIX", "/chameleon"),
    "SERVICE_DEFAULT_TTL": env.float("CHAMELEON_SERVICE_DEFAULT_TTL", 30.0, minimum=1.0),
    "MONITOR_INTERVAL": env.float("CHAMELEON_MONITOR_INTERVAL", 10.0, minimum=0.1),
    "ALERT_INTERVAL": env.float("CHAMELEON_ALERT_INTERVAL", 5.0, minimum=0.1),
}

# --- Auth, API ------------------------------------------------------------------------
# Model permissions as Django computes them, cached between requests (core/backends.py).
AUTHENTICATION_BACKENDS = ["core.backends.CachedModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous API call gets 401 with `WWW-Authenticate: Token`.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.api.permissions.ModelPermissions"],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "core.api.filter_backends.FilterBackend",  # django-filter's, forms built once
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exceptions.exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Chameleon API",
    "DESCRIPTION": "Plugins, events, scheduled tasks, services and nodes of a Chameleon control plane.",
    "VERSION": CHAMELEON["VERSION"],
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Internationalisation, static files -------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# Outside production, files are served straight from the source folders, so `make run`
# needs no build step. Production serves what `collectstatic` gathered (the Docker image
# runs it), compressed and with hashed names that browsers may cache for good.
WHITENOISE_USE_FINDERS = not IS_PRODUCTION
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if IS_PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Logging --------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "core.logging.ContextFilter"}},
    "formatters": {
        "console": {"()": "core.logging.ConsoleFormatter"},
        "json": {"()": "core.logging.JsonFormatter"},
    },
    "handlers": {
        "default": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        },
    },
    "root": {"handlers": ["default"], "level": "WARNING" if LOG_LEVEL == "warn" else LOG_LEVEL.upper()},
    "loggers": {
        # Replaces Django's own console handler, so each record is written once.
        "django": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "INFO"},
        "uvicorn.access": {"level": "WARNING"},
        "celery.beat": {"level": "WARNING"},
    },
}
