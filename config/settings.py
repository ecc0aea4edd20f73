"""Stepwise settings. Everything that differs between a laptop and production comes from the
environment: SQLite by default, PostgreSQL with DATABASE_URL, Redis channels with REDIS_URL."""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import sys
import tempfile
from pathlib import Path

import dj_database_url
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    return [item.strip() for item in raw.split(",") if item.strip()] if raw else default


# pytest sets PYTEST_VERSION; `manage.py test` is covered too. Tests get a throwaway key and
# plain-HTTP defaults so the test client is not redirected to https.
TESTING = "PYTEST_VERSION" in os.environ or sys.argv[1:2] == ["test"]
DEBUG = env_bool("DEBUG", False)
# A development key only when DEBUG is on; production must set SECRET_KEY.
SECRET_KEY = os.environ.get("SECRET_KEY") or (
    "django-insecure-dev-only-key" if DEBUG or TESTING else ""
)
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Set SECRET_KEY in the environment, or DEBUG=1 for development."
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "channels",
    "django_tasks_db",
    "axes",
    "orchestration.runtime",
    "approvals",
    "approvals.api",
    "ninja",  # only for its templates and static files: the API docs page, served locally
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Django's, each policy built once (approvals.middleware)
    "approvals.middleware.ContentSecurityPolicyMiddleware",
    # before the session and CSRF: /api/ requests are sized and answered as problem+json
    "approvals.api.middleware.ApiBoundaryMiddleware",
    "approvals.middleware.utf8_forms_only",
    "approvals.middleware.no_nul_in_address",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # Django's, reading the user with the session where it can (approvals.authcache)
    "approvals.authcache.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "approvals.middleware.MessageMiddleware",  # Django's, storage class imported once
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # last, as django-axes asks: it turns a locked-out login into its lockout response
    "axes.middleware.AxesMiddleware",
]
MIDDLEWARE.insert(0, "approvals.request_log.LogContextMiddleware")  # see "Operations" below

# Login throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one username
# from one address, that pair is locked out for AXES_COOLOFF_TIME hours, even with the right
# password. An admin lifts it early with `manage.py axes_reset_username USER` or in the admin.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # ModelBackend reading the signed-in user through the cache (approvals.authcache)
    "approvals.authcache.CachedModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("AXES_COOLOFF_HOURS", "0.25"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

# Our pages (templates/) are Jinja2 (approvals/templating.py): compiled once per process,
# reloaded on change only with DEBUG. Django's engine stays for the admin, form widgets and
# third-party apps (their app directories); Jinja2 comes first so that templates/ overrides
# theirs (registration/logged_out.html).
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {
            "environment": "approvals.templating.environment",
            "auto_reload": DEBUG,
            "context_processors": [
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "approvals.templating.csrf",
            ],
        },
    },
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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

# SQLite by default: WAL so readers never block the worker, IMMEDIATE transactions so two
# writers queue on the busy timeout instead of failing with "database is locked".
# The file is created 0600 (orchestration.runtime.apps restricts it on every new connection, which
# also covers test databases; SQLite gives its -wal/-shm files the same mode).
SQLITE_PATH = Path(os.environ.get("SQLITE_PATH", BASE_DIR / "var" / "stepwise.sqlite3"))
# The test database is a file, never `:memory:`, so worker subprocesses started by tests can
# open it (they are given its path). One file per pytest process: several suites may run side
# by side on one machine. Not named by the pid alone: Django deletes a test database's file but
# not its -wal and -shm, and a later process given the same pid (pids wrap at 32768) had
# SQLite replay that stale WAL into its new database ("database disk image is malformed").
SQLITE_TEST_PATH = os.environ.get("SQLITE_TEST_PATH") or str(
    Path(tempfile.gettempdir()) / f"stepwise-test-{os.getpid()}-{secrets.token_hex(6)}.sqlite3"
)


def remove_sqlite_sidecars(path: str) -> None:
    """At the test process's exit: the test database's -wal and -shm (and the file itself if
    the run ended before Django dropped it), so /tmp does not fill with them."""
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


if TESTING and not os.environ.get("SQLITE_TEST_PATH"):
    atexit.register(remove_sqlite_sidecars, SQLITE_TEST_PATH)
DATABASE_URL = os.environ.get("DATABASE_URL")
# Seconds a SQLite writer waits for the write lock before "database is locked" (an HTTP 500).
# bin/serve raises it to 60: with a hundred reviewers on a busy machine writers queue longer.
SQLITE_BUSY_TIMEOUT = float(os.environ.get("SQLITE_BUSY_TIMEOUT", "20"))
# Connections to PostgreSQL are bounded per process by Django's native psycopg pool: under an
# ASGI server every request runs in a thread of its own, and a persistent connection per thread
# (CONN_MAX_AGE) opened one PostgreSQL session per request until the server refused more
# ("FATAL: too many clients"). With the pool a request borrows one of at most
# STEPWISE_DB_POOL_MAX connections and waits up to STEPWISE_DB_POOL_TIMEOUT seconds for one;
# the total is (processes x pool max) + 1 LISTEN connection per worker, whatever the load.
# STEPWISE_DB_POOL_MAX=0 turns the pool off (a connection per request; for use behind PgBouncer
# in transaction mode). Tests run without it unless they ask (test subprocesses may).
DB_POOL_MAX = int(os.environ.get("STEPWISE_DB_POOL_MAX", "0" if TESTING else "8"))
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=0 if DB_POOL_MAX and DATABASE_URL.startswith("postgres")
            else 60
        )
    }
    if DB_POOL_MAX and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        from config.dbpool import check_connection

        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            # A pooled connection is checked before it is handed out (see config.dbpool):
            # after PostgreSQL restarted every idle one is dead, and each would fail the
            # request or the run that borrowed it.
            "check": check_connection,
            "min_size": min(int(os.environ.get("STEPWISE_DB_POOL_MIN", "1")), DB_POOL_MAX),
            "max_size": DB_POOL_MAX,
            "timeout": float(os.environ.get("STEPWISE_DB_POOL_TIMEOUT", "30")),
            # a pooled connection idle this long is closed (down to min_size)
            "max_idle": 300,
        }
    # Prepared statements (on by default; STEPWISE_DB_PREPARED=0 turns them off): Django binds
    # parameters on the server and psycopg prepares a statement on a connection once it ran
    # STEPWISE_DB_PREPARE_THRESHOLD times; pooled connections keep them, across rollbacks too
    # (config.dbpool.KeepPreparedConnection). Parsing and planning were about half of
    # PostgreSQL's CPU per review cycle: the load test (1 server x 1 worker, 20 reviewers)
    # measured its backends at about a quarter less CPU per cycle with them (a third per
    # request). Turn them off behind PgBouncer in transaction mode before 1.21 (or without
    # max_prepared_statements). A migration that changes a column's type fails the statements
    # prepared before it on live connections ("cached plan must not change result type")
    # until they are replaced: restart the processes after such a migration.
    if (env_bool("STEPWISE_DB_PREPARED", True)
            and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"):
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True,
            prepare_threshold=int(os.environ.get("STEPWISE_DB_PREPARE_THRESHOLD", "2")),
        )
        if "pool" in DATABASES["default"]["OPTIONS"]:
            # pooled connections keep their prepared statements across a rollback
            # (config.dbpool.KeepPreparedConnection): psycopg dropped them all on each one
            from config.dbpool import KeepPreparedConnection

            DATABASES["default"]["OPTIONS"]["pool"]["connection_class"] = KeepPreparedConnection
    # DATABASE_TEST_NAME lets two suites share one PostgreSQL server without clobbering
    # each other's test database.
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("DATABASE_TEST_NAME") or None}
else:
    SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            # Django's SQLite backend whose writers queue on a kernel lock before SQLite's
            # (orchestration/runtime/sqlite_backend): prompt, fair turns under load
            "ENGINE": "orchestration.runtime.sqlite_backend",
            "NAME": SQLITE_PATH,
            # Kept open between requests: a SQLite connection holds no server resource, while
            # opening one costs ~0.8 ms of CPU (Django registers its SQL functions, the pragmas
            # run, the file's mode is checked) and its prepared statements are lost with it.
            # The server reuses its request threads (config.asgi), so they stay few.
            "CONN_MAX_AGE": int(os.environ.get("SQLITE_CONN_MAX_AGE", "600")),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": SQLITE_BUSY_TIMEOUT,
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                    f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)};"
                ),
            },
            "TEST": {"NAME": SQLITE_TEST_PATH},
        }
    }

# Requests a server process runs at once (each in a thread of its own); the others wait in
# the event loop. 0: no limit. On SQLite every write transaction holds the one write lock
# while its thread competes for the GIL with every other request thread of the process: with
# twenty requests at once a transaction of a few ms held the lock for hundreds, and the task
# worker waited behind it. Two threads keep a core busy (the views are CPU-bound, SQLite
# runs in-process); with four, a decision's transaction held the lock 7.7 ms at the median
# instead of 5.9 and runs waited behind it (decision to run finished p50 107-325 ms against
# 22-68, docs/performance.md "Fifteenth round").
# On PostgreSQL with the pool, as many as the pool has connections: a request beyond that
# waited in the pool and failed after STEPWISE_DB_POOL_TIMEOUT (an HTTP 500: 100 reviewers
# logging in at once, each hashing a password while it held a connection); it now waits its
# turn in the event loop and is served late instead of refused.
_POOLED = bool(DATABASE_URL and DB_POOL_MAX and DATABASE_URL.startswith("postgres"))
STEPWISE_REQUEST_THREADS = int(os.environ.get(
    "STEPWISE_REQUEST_THREADS",
    str(DB_POOL_MAX) if _POOLED else "0" if DATABASE_URL else "2"))

REDIS_URL = os.environ.get("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 gives every connection a 5 s socket timeout by default, the same 5 s
            # that channels_redis blocks in BZPOPMIN waiting for a message: an idle live
            # page's receive then failed with "Timeout reading from redis" and its websocket
            # closed. Reads may take longer than the blocking pop, not forever.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Sessions: every request reads its session. With Redis they are read from it and written
# through to the database (cached_db: a Redis restart logs nobody out), which saves a query on
# every page; without it (or in tests, which keep their database isolation) from the database,
# by a fixed statement (config.sessions).
SESSION_ENGINE = "config.sessions"
if REDIS_URL and not TESTING:
    CACHES = {
        "default": {
            # Django's, with one redis-py client per pool, not one per call (config.rediscache)
            "BACKEND": "config.rediscache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "stepwise",
        }
    }
    SESSION_ENGINE = "config.cached_sessions"
# The signed-in user, their permissions and group names cached between requests
# (approvals.authcache), only in a cache all server processes share: a change to a user, group
# or permission replaces a token in that cache, and a process-local cache would not see
# another process's change.
STEPWISE_AUTH_CACHE = env_bool("STEPWISE_AUTH_CACHE", bool(REDIS_URL) and not TESTING)

# Runs ("default") and notifications ("notify") on their own queues, each served by its own
# workers in production (orchestration.runtime.queues names them): a slow webhook receiver
# or mail server never delays a run.
TASKS = {
    "default": {
        "BACKEND": os.environ.get("TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default", "notify"],
    }
}

# The graphs this installation runs: name -> "module:attribute" of a compiled graph or a
# factory returning one. A run stores the name, so any worker can resume any thread.
# STEPWISE_EXTRA_GRAPHS="name=module:attr,other=module:attr" adds more without editing code.
STEPWISE_GRAPHS: dict[str, str] = {
    "expense": "demo.workflows.expense:graph",
    "publishing": "demo.workflows.publishing:graph",
    "support": "demo.workflows.support:graph",
    "email_agent": "demo.workflows.email_agent:graph",
}
for _entry in env_list("STEPWISE_EXTRA_GRAPHS", []):
    _name, _, _target = _entry.partition("=")
    STEPWISE_GRAPHS[_name.strip()] = _target.strip()

# A worker holds a lease on the run it executes and renews it every third of this many
# seconds; a run whose lease expired is stalled and `manage.py resume_stalled` resumes it.
STEPWISE_LEASE_SECONDS = float(os.environ.get("STEPWISE_LEASE_SECONDS", "30"))
# A worker's checkpoint puts on PostgreSQL commit without waiting for the WAL flush unless
# this is on: a crash of the PostgreSQL server may then re-run the last few hundred ms of
# supersteps of runs in progress (docs/deployment.md, "Checkpoint commits").
STEPWISE_CHECKPOINT_SYNCHRONOUS_COMMIT = env_bool("STEPWISE_CHECKPOINT_SYNCHRONOUS_COMMIT", False)

# The HTTP API: request bodies over this many bytes get 413; JSON nested deeper gets 400.
STEPWISE_API_MAX_BODY_BYTES = int(os.environ.get("STEPWISE_API_MAX_BODY_BYTES", 256 * 1024))
STEPWISE_API_MAX_DEPTH = 32
# Webhook deliveries: attempt n waits BASE * FACTOR**(n-1) seconds after attempt n-1 failed
# (30 s, 2 min, 8 min, 32 min, ~2 h, ~8.5 h: 6 retries over ~11 h); a 2xx ends it.
STEPWISE_WEBHOOK_MAX_ATTEMPTS = int(os.environ.get("STEPWISE_WEBHOOK_MAX_ATTEMPTS", "7"))
STEPWISE_WEBHOOK_BACKOFF_SECONDS = float(os.environ.get("STEPWISE_WEBHOOK_BACKOFF_SECONDS", "30"))
STEPWISE_WEBHOOK_BACKOFF_FACTOR = 4.0
# how long one POST may take (connect, send, answer) before the attempt counts as failed
STEPWISE_WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("STEPWISE_WEBHOOK_TIMEOUT_SECONDS", "10"))

# E-mails the mail server could not take (down, timing out, 4xx) are sent again: attempt n+1
# STEPWISE_EMAIL_BACKOFF_SECONDS * 4**(n-1) after attempt n (30 s, 2 min, 8 min, 32 min)
STEPWISE_EMAIL_MAX_ATTEMPTS = int(os.environ.get("STEPWISE_EMAIL_MAX_ATTEMPTS", "5"))
STEPWISE_EMAIL_BACKOFF_SECONDS = float(os.environ.get("STEPWISE_EMAIL_BACKOFF_SECONDS", "30"))

# Reaching reviewers: e-mail to a new review's assignee (console in development, SMTP in
# production or when EMAIL_HOST is set), with links built on STEPWISE_BASE_URL.
STEPWISE_BASE_URL = os.environ.get("STEPWISE_BASE_URL", "http://127.0.0.1:8000")
# graph name -> seconds a new review has before it is overdue (a payload's "due_in" wins)
STEPWISE_REVIEW_DUE_SECONDS: dict[str, float] = {}
# who hears about overdue reviews (by e-mail), once per review
STEPWISE_ESCALATE_TO_GROUP = os.environ.get("STEPWISE_ESCALATE_TO_GROUP", "ops")
# a claim older than this returns to the pool (manage.py sweep_reviews)
STEPWISE_CLAIM_IDLE_SECONDS = float(os.environ.get("STEPWISE_CLAIM_IDLE_SECONDS", "1800"))
MAILERS = {
    # development and tests print e-mails unless EMAIL_HOST is set; production sends by SMTP
    "default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if (DEBUG or TESTING) and not os.environ.get("EMAIL_HOST") else {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": os.environ.get("EMAIL_HOST", "localhost"),
            "port": int(os.environ.get("EMAIL_PORT", "587")),
            "username": os.environ.get("EMAIL_HOST_USER", ""),
            "password": os.environ.get("EMAIL_HOST_PASSWORD", ""),
            "use_tls": env_bool("EMAIL_USE_TLS", True),
            # a mail server that stops answering fails the attempt (and it is tried again
            # later, approvals.mailretry) instead of holding a task worker forever
            "timeout": float(os.environ.get("EMAIL_TIMEOUT", "10")),
        },
    },
}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "stepwise@localhost")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
# WhiteNoise serves STATIC_ROOT and warns when it is missing; in development and tests the
# files come from the finders, so an empty directory is enough.
WHITENOISE_USE_FINDERS = DEBUG or TESTING
if WHITENOISE_USE_FINDERS:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Files served at the site's root by WhiteNoise, before sessions and the login requirement:
# /favicon.ico, which browsers and other clients ask for whatever the page links (a 404 per
# session in the server log otherwise). Pages link static/favicon.svg.
WHITENOISE_ROOT = BASE_DIR / "webroot"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or TESTING
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Production defaults whenever DEBUG is off; tests run over plain HTTP.
_SECURE = not DEBUG and not TESTING
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _SECURE)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _SECURE)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _SECURE)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
# Only behind a proxy that sets X-Forwarded-Proto (and strips it from clients): trusted
# everywhere, a client reaching the server directly could claim to be on HTTPS.
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content-Security-Policy: our own origin only. No inline script or style anywhere (htmx's
# indicator style is turned off in base.html's htmx-config), so none is allowed; 'self' in
# connect-src covers the live pages' same-origin websockets.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# LOGGING: see "Operations" below.


# ---------------------------------------------------------------------------------------
# Operations (issue 14): self-healing stalled runs, retention, probes, metrics, logs.

# The sweeper (`resume_stalled --auto`) resumes a stalled run by itself: attempt n waits
# backoff_seconds * factor**(n-1) after the stall; after max_attempts the run fails as "needs
# ops" (e-mail to STEPWISE_ESCALATE_TO_GROUP, run.stalled webhook, first on the ops console).
# Per graph: STEPWISE_STALL_POLICY["graph name"] = {...}, or None to opt the graph out.
STEPWISE_STALL_POLICY: dict[str, dict[str, float] | None] = {
    "default": {
        "max_attempts": int(os.environ.get("STEPWISE_STALL_MAX_ATTEMPTS", "5")),
        "backoff_seconds": float(os.environ.get("STEPWISE_STALL_BACKOFF_SECONDS", "5")),
        "factor": 2.0,
    },
}
# A worker process beats every third of a lease; one unseen for this long is gone (0: 3 beats).
STEPWISE_WORKER_STALE_SECONDS = float(os.environ.get("STEPWISE_WORKER_STALE_SECONDS", "0"))
# A worker survives errors outside its tasks (logged, counted, backed off); this many unexpected
# ones in a row end it (exit status 1) for its supervisor to start a fresh process.
STEPWISE_WORKER_MAX_ERRORS = int(os.environ.get("STEPWISE_WORKER_MAX_ERRORS", "10"))
# Retention: `prune_threads` (and `resume_stalled --prune`, every STEPWISE_PRUNE_EVERY_SECONDS)
# forgets the checkpoints of threads finished more than this many days ago. Unset: never.
STEPWISE_PRUNE_AFTER_DAYS = os.environ.get("STEPWISE_PRUNE_AFTER_DAYS") or None
STEPWISE_PRUNE_EVERY_SECONDS = float(os.environ.get("STEPWISE_PRUNE_EVERY_SECONDS", "3600"))
# ... and deletes the task queue's rows (django-tasks-db) finished more than this many days ago
# (orchestration/runtime/task_retention.py). Empty: never.
STEPWISE_TASK_RESULTS_KEEP_DAYS = os.environ.get("STEPWISE_TASK_RESULTS_KEEP_DAYS", "14") or None
# /metrics: a bearer token, or the scraper's address in this list (IPs or networks).
STEPWISE_METRICS_TOKEN = os.environ.get("STEPWISE_METRICS_TOKEN", "")
STEPWISE_METRICS_ALLOW = env_list("STEPWISE_METRICS_ALLOW", ["127.0.0.1/32", "::1/128"])
# Probes from a load balancer come over plain HTTP to the process itself.
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz|metrics)$"]

# Logs: JSON lines (python-json-logger) with thread_id, run_id and review_id where known; plain
# text with the ids appended when LOG_FORMAT=text (bin/demo) or in development.
LOG_FORMAT = os.environ.get("LOG_FORMAT") or ("text" if DEBUG or TESTING else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"ids": {"()": "orchestration.runtime.logcontext.ContextFilter"}},
    "formatters": {
        # "time": ISO 8601 in UTC with its offset (asctime had no zone: an ops trial could
        # not line up two machines' logs); the same formatter writes uvicorn's own lines
        # (config/uvicorn-logging.json, which bin/serve-web passes it)
        "json": {"()": "config.logformat.JsonLines"},
        "text": {
            "()": "orchestration.runtime.logcontext.TextFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["ids"],
                    "formatter": "json" if LOG_FORMAT == "json" else "text"},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # Every record goes out once, through the root's handler: Django's defaults give "django"
    # its own console handler (DEBUG) and "django.server" another, and both also propagate,
    # so each request line was printed twice (once plain, once formatted). ADMINS is unset,
    # so the default mail_admins handler dropped here never sent anything.
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "propagate": True},
        # an expected 403 (PermissionDenied from approvals.access) is one warning line, not a
        # traceback: the denial is the product working, not an error
        "django.request": {"handlers": [], "propagate": True, "filters": ["denials"]},
        # Django's per-task lines ("Task id=... state=RUNNING", "... state=SUCCESSFUL": two
        # per task, four per review cycle) were most of a worker's log writes; a run's end is
        # one line of our own (orchestration.runtime.tasks) and a failed task is still an
        # ERROR with its traceback. TASKS_LOG_LEVEL=INFO (or `stepwise_worker -v 2`) shows
        # them again.
        "django.tasks": {"level": os.environ.get("TASKS_LOG_LEVEL", "WARNING")},
        # a uvicorn server process's own lines ("Started server process", "Waiting for
        # connections to close") through the root's handler like ours, once Django is set up
        "uvicorn": {"handlers": [], "propagate": True},
        "uvicorn.error": {"handlers": [], "propagate": True},
    },
}
LOGGING["filters"]["denials"] = {"()": "approvals.request_log.ExpectedDenialFilter"}
