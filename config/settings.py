"""Settings for the Provision Server and the Director, read from the environment.

Every value has a development default that is safe on a laptop; production
(``ZTSP_ENV=production``) must set the secrets and hosts explicitly. See the
README for the full list of variables.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import environ
from django.core.exceptions import ImproperlyConfigured

from config import embedded
from config.secrets import load_secrets, parse_data_keys

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

ZTSP_ENV = env.str("ZTSP_ENV", default="development")
PRODUCTION = ZTSP_ENV == "production"
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# The debug error page lists the settings; this filter also hides the Redis
# and broker URLs, which may carry a password.
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.error_reports.SettingsFilter"

# Roles this process serves. The Provision Server is the vendor's cloud side
# (products, MSPs, ZTP lookup). The Director serves tenants (onboarding, PKI,
# tunnel). All-in-one is the default.
ZTSP_ROLES = set(env.list("ZTSP_ROLES", default=["provision", "director"]))
PROVISION_ROLE = "provision" in ZTSP_ROLES
DIRECTOR_ROLE = "director" in ZTSP_ROLES

# With no DATABASE_URL / REDIS_URL, embedded servers start under .data/ unless
# ZTSP_EMBEDDED=0, in which case both URLs are required.
if env.bool("ZTSP_EMBEDDED", default=not PRODUCTION):
    embedded.ensure_service_urls()

_secrets = load_secrets(production=PRODUCTION, data_dir=embedded.data_dir())
SECRET_KEY = _secrets["DJANGO_SECRET_KEY"]
ZTSP_DATA_KEYS = parse_data_keys(_secrets["ZTSP_DATA_KEYS"])
ZTSP_HASH_KEY = _secrets["ZTSP_HASH_KEY"]

# Tenant domains are checked by the tenant middleware against the Domain table,
# so development accepts any *.localhost name; production lists its names.
ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS",
    default=[] if PRODUCTION else ["localhost", ".localhost", "127.0.0.1", "[::1]", "testserver"],
)
# The public (Provision Server) host names, each mapped to the public schema.
ZTSP_PUBLIC_HOSTS = env.list("ZTSP_PUBLIC_HOSTS", default=["localhost", "127.0.0.1"])
# Number of reverse proxies in front of us that append to X-Forwarded-For. The
# client address is taken that many hops from the right, never from the left.
ZTSP_TRUSTED_PROXY_COUNT = env.int("ZTSP_TRUSTED_PROXY_COUNT", default=0)

SHARED_APPS = [
    "django_tenants",
    "tenants",
    "audit",
    "provisioning",
    "msp",
    "gateway",
    "demo",
    # Health, readiness and metrics endpoints: no models, served for the public host names only.
    "ops",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]
# Tenant admins live in their tenant's schema, so a login of tenant A does not
# exist at tenant B.
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "onboarding",
    "pki",
    "est",
    "policies",
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
ROOT_URLCONF = "config.urls_tenant"
DEFAULT_NOT_FOUND_TENANT_VIEW = "config.api.unknown_host_view"
# A tenant created without this would keep a schema with no tables if its
# migration failed halfway; creation is explicit in tenants.services instead.
# That also covers cloning: django-tenants would fake the migrations that a
# stale template lacks, while tenants.template rebuilds the template first.
TENANT_CREATION_FAKES_MIGRATIONS = False

MIDDLEWARE = [
    # Counts every response, and serves the health and metrics endpoints
    # before the tenant lookup, which reads the database.
    "ops.middleware.OpsMiddleware",
    # Static files are served before the tenant lookup: they need no schema.
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "tenants.middleware.TenantHostMiddleware",
    "common.middleware.RejectNulCharactersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
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

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

_database = env.db_url("DATABASE_URL")
# A Unix socket folder arrives percent-encoded in the host part of the URL.
_database["HOST"] = unquote(_database.get("HOST") or "")
_database["ENGINE"] = "django_tenants.postgresql_backend"
# Under ASGI each request runs in a thread of its own with its own database
# connection, so persistent connections pile up past PostgreSQL's limit under
# load. A psycopg pool per process bounds them instead: a request borrows a
# connection and returns it when the request ends.
DATABASE_POOL_SIZE = env.int("DATABASE_POOL_SIZE", default=10)
if DATABASE_POOL_SIZE > 0:
    _database["CONN_MAX_AGE"] = 0
    # With a pool, Django 5.2 passes this on as the pool's check: each connection
    # is tested (one empty query) before it is lent, so connections that a
    # PostgreSQL restart closed are replaced instead of failing a request.
    _database["CONN_HEALTH_CHECKS"] = True
    _database.setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DATABASE_POOL_SIZE,
        # Seconds a request waits for a free connection before it fails.
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
    }
else:
    _database["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
    _database["CONN_HEALTH_CHECKS"] = True
_database.setdefault("TEST", {})["NAME"] = env.str("ZTSP_TEST_DATABASE_NAME", default="test_ztsp")
DATABASES = {"default": _database}
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("ZTSP_CACHE_PREFIX", default="ztsp"),
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
    }
}


def _celery_url(url: str) -> str:
    # Kombu spells a Redis Unix socket "redis+socket://", redis-py "unix://".
    return "redis+socket://" + url.removeprefix("unix://") if url.startswith("unix://") else url


CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=_celery_url(REDIS_URL))
CELERY_RESULT_BACKEND = None
# One queue name per deployment (and per test run), so two of them can share a Redis.
CELERY_TASK_DEFAULT_QUEUE = env.str("ZTSP_CELERY_QUEUE", default="ztsp")
# A message is acknowledged after its task finishes, not when a worker takes
# it, so a worker that dies mid-task (SIGKILL, OOM, a lost machine) loses no
# work: the message is delivered again. Every task must therefore be safe to
# run twice. The issuance tasks are, through row locks and status checks.
CELERY_TASK_ACKS_LATE = True
# Redis hands an unacknowledged message to another worker once it is this many
# seconds old (kombu 5.7 looks for such messages every 100 s, so the delay can
# be that much longer). It must exceed the longest countdown or ETA a task is
# queued with (retry backoff: 60 s), and the longest a task may run (time
# limits up to 660 s). Otherwise Redis would deliver a message a second time
# while its task waits or still runs. tests/faults/test_celery_settings.py
# checks both.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
# When a pool child dies mid-task while the worker lives on, the message goes
# back to the queue at once. With acks_late alone, Celery would acknowledge it
# as failed and the work would be lost.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# With acks_late, a worker reserves only one message per pool child, so a
# killed worker strands few messages until the visibility timeout and a long
# task does not hold back messages that another worker could run.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Seconds; a task may override both (the tenant creation and PKI beat tasks do).
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_TASK_ALWAYS_EAGER = False
# The worker logs through LOGGING below, whose filter puts the task's tenant schema on each record. By default
# Celery replaces the root logger's handlers with its own, which have no such filter.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fix-up closes every database connection (and, with the prefork
# pool, the whole psycopg pool) after each task unless this is set; then it
# closes them after every 2 x this many tasks. Reuse saves a new PostgreSQL
# connection per task.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=50)

# Celery beat (`celery -A config beat`): periodic tasks, queued in the public
# schema; each visits every tenant. Intervals in seconds.
ZTSP_CRL_REFRESH_TASK_SECONDS = env.int("ZTSP_CRL_REFRESH_TASK_SECONDS", default=600)
ZTSP_RENEWAL_REMINDER_SECONDS = env.int("ZTSP_RENEWAL_REMINDER_SECONDS", default=3600)
# Approved requests still without a certificate this long after approval get
# their issuance queued again, at this interval (for an approval whose task
# never reached a broker that was down).
ZTSP_ISSUANCE_SWEEP_SECONDS = env.int("ZTSP_ISSUANCE_SWEEP_SECONDS", default=60)
CELERY_BEAT_SCHEDULE = {
    "refresh-crls": {
        "task": "pki.tasks.refresh_crls_task",
        "schedule": ZTSP_CRL_REFRESH_TASK_SECONDS,
        # A run still queued when the next one is due is dropped, so a stopped worker finds no backlog.
        "options": {"expires": ZTSP_CRL_REFRESH_TASK_SECONDS},
    },
    "remind-renewals": {
        "task": "pki.tasks.remind_renewals_task",
        "schedule": ZTSP_RENEWAL_REMINDER_SECONDS,
        "options": {"expires": ZTSP_RENEWAL_REMINDER_SECONDS},
    },
    "requeue-stalled-issuances": {
        "task": "onboarding.tasks.requeue_stalled_issuances_task",
        "schedule": ZTSP_ISSUANCE_SWEEP_SECONDS,
        "options": {"expires": ZTSP_ISSUANCE_SWEEP_SECONDS},
    },
}
# Beat's record of the last run of each entry; its folder must exist.
CELERY_BEAT_SCHEDULE_FILENAME = env.str("CELERY_BEAT_SCHEDULE_FILENAME",
                                        default=str(embedded.data_dir() / "celerybeat-schedule"))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Email carries password-set and password-reset links, which are secrets.
# The console backend prints them into the web server's log, so it is the
# default in development only; production sends through SMTP at EMAIL_URL
# (django-environ's form, e.g. smtp+tls://user:password@mail.example:587).
_email = env.email_url("EMAIL_URL", default="smtp://localhost:25" if PRODUCTION else "consolemail://")
EMAIL_BACKEND = env.str("DJANGO_EMAIL_BACKEND", default=_email["EMAIL_BACKEND"])
EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
EMAIL_PORT = _email["EMAIL_PORT"] or 25
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", default="ztsp@localhost")
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
SESSION_COOKIE_HTTPONLY = True
# Production sends the session and CSRF cookies over HTTPS only, so a
# plain-HTTP request never carries a signed-in session.
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION

# HTTPS in production (`manage.py check --deploy` checks each of these).
# A TLS proxy in front of the web server must tell Django the original
# scheme, or every redirect to HTTPS would loop. uvicorn's --proxy-headers
# does that for proxies listed in FORWARDED_ALLOW_IPS. Otherwise name the
# proxy's header as "HEADER,VALUE", e.g. "X-Forwarded-Proto,https", and only
# when the proxy always overwrites that header: a client could send it too.
_proxy_ssl_header = env.list("DJANGO_SECURE_PROXY_SSL_HEADER", default=[])
if _proxy_ssl_header:
    if len(_proxy_ssl_header) != 2 or not all(_proxy_ssl_header):
        raise ImproperlyConfigured("DJANGO_SECURE_PROXY_SSL_HEADER must be HEADER,VALUE, "
                                   "e.g. X-Forwarded-Proto,https.")
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header[0].upper().replace("-", "_"), _proxy_ssl_header[1])
# Plain-HTTP requests get a redirect to HTTPS, so browsers move to the TLS
# site before they send a password or a session cookie.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=PRODUCTION)
# Paths, as regular expressions without the leading "/", that plain HTTP may
# still reach, e.g. a load balancer's health check.
SECURE_REDIRECT_EXEMPT = env.list("DJANGO_SECURE_REDIRECT_EXEMPT", default=[])
# HSTS: a browser that has seen the header uses only HTTPS for this host, and
# for its subdomains (the tenant hosts), for this many seconds (one year).
# The preload flag alone enrolls nothing: the browsers' preload list takes a
# separate, manual submission.
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=PRODUCTION)
# Origins (scheme://host[:port]) trusted for unsafe requests from another
# host, e.g. a portal served under a different name by the proxy.
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "config" / "static"]
# Only the production image collects static files (to DJANGO_STATIC_ROOT).
STATIC_ROOT = env.str("DJANGO_STATIC_ROOT", default="") or None
# WhiteNoise serves the admin's and Swagger UI's files. Outside production it
# reads them from the installed apps, so no collectstatic step is needed; the
# production image runs collectstatic at build time.
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = False

# Request bodies above this are rejected with 413 before parsing (bytes).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("ZTSP_MAX_BODY_BYTES", default=64 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "ztp_access_key": env.str("ZTSP_THROTTLE_ACCESS_KEY", default="6000/min"),
        "ztp_product": env.str("ZTSP_THROTTLE_PRODUCT", default="30/min"),
        "ztp_client": env.str("ZTSP_THROTTLE_CLIENT", default="3000/min"),
        # POST /api/v1/onboard, counted per tenant. An EC sends one request
        # and then polls, so the per-product rate only stops floods.
        "onboard_client": env.str("ZTSP_THROTTLE_ONBOARD_CLIENT", default="3000/min"),
        "onboard_product": env.str("ZTSP_THROTTLE_ONBOARD_PRODUCT", default="20/min"),
        "onboard_wrong_key": env.str("ZTSP_THROTTLE_ONBOARD_WRONG_KEY", default="30/min"),
    },
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ZTSP API",
    "DESCRIPTION": "Edge Controller provisioning (ZTP lookup, onboarding, PKI) and MSP automation.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's files come from the drf-spectacular-sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Provisioning behaviour.
# Seconds an EC waits before looking up again when its product is not mapped yet.
ZTSP_LOOKUP_RETRY_AFTER = env.int("ZTSP_LOOKUP_RETRY_AFTER", default=60)
# Maximum long-poll wait a client may ask for (seconds).
ZTSP_LONG_POLL_MAX_WAIT = env.int("ZTSP_LONG_POLL_MAX_WAIT", default=60)
# Lifetime of EC certificates and issuing CAs (days).
ZTSP_EC_CERT_DAYS = env.int("ZTSP_EC_CERT_DAYS", default=90)
ZTSP_ISSUING_CA_DAYS = env.int("ZTSP_ISSUING_CA_DAYS", default=5 * 365)
ZTSP_ROOT_CA_DAYS = env.int("ZTSP_ROOT_CA_DAYS", default=20 * 365)
ZTSP_ORGANIZATION = env.str("ZTSP_ORGANIZATION", default="ZTSP Development")
# CA keys: where new ones are made, and the signer backends that can load one.
ZTSP_CA_KEY_BACKEND = env.str("ZTSP_CA_KEY_BACKEND", default="software")
ZTSP_SIGNER_BACKENDS = {"software": "pki.signers.SoftwareBackend"}
# After an issuing CA rotation, the old CA stays trusted this long (days) while its ECs renew.
ZTSP_CA_OVERLAP_DAYS = env.int("ZTSP_CA_OVERLAP_DAYS", default=30)
# ECs are sent a renewal reminder when this many days of validity are left (days).
ZTSP_EC_RENEW_BEFORE_DAYS = env.int("ZTSP_EC_RENEW_BEFORE_DAYS", default=30)
# A CRL is re-signed at least this often even with no revocation (seconds); its
# nextUpdate is ZTSP_CRL_NEXT_UPDATE_HOURS after signing.
ZTSP_CRL_REFRESH_SECONDS = env.int("ZTSP_CRL_REFRESH_SECONDS", default=3600)
ZTSP_CRL_NEXT_UPDATE_HOURS = env.int("ZTSP_CRL_NEXT_UPDATE_HOURS", default=24)

# Tunnel gateway: its listening address and the address sent to ECs.
ZTSP_TUNNEL_BIND = env.str("ZTSP_TUNNEL_BIND", default="127.0.0.1")
ZTSP_TUNNEL_PORT = env.int("ZTSP_TUNNEL_PORT", default=8443)
ZTSP_TUNNEL_PUBLIC_HOST = env.str("ZTSP_TUNNEL_PUBLIC_HOST", default="localhost")
ZTSP_TUNNEL_PUBLIC_PORT = env.int("ZTSP_TUNNEL_PUBLIC_PORT", default=ZTSP_TUNNEL_PORT)
# Port of the HTTPS server (manage.py run_https) that serves EST with TLS client certificates.
ZTSP_HTTPS_PORT = env.int("ZTSP_HTTPS_PORT", default=8444)
# Seconds between EC heartbeats; an EC silent for 3 intervals counts as offline.
ZTSP_HEARTBEAT_INTERVAL = env.int("ZTSP_HEARTBEAT_INTERVAL", default=30)
# The scheme and port that tenant management URLs use on this deployment.
ZTSP_DIRECTOR_SCHEME = env.str("ZTSP_DIRECTOR_SCHEME", default="http")
ZTSP_DIRECTOR_PORT = env.int("ZTSP_DIRECTOR_PORT", default=8000)
ZTSP_TENANT_KEY_GRACE_SECONDS = env.int("ZTSP_TENANT_KEY_GRACE_SECONDS", default=3600)  # seconds old key stays valid
# New tenant schemas are cloned from this migrated template schema ("clone"),
# or made by running every migration ("migrate", slower).
ZTSP_TENANT_TEMPLATE_SCHEMA = env.str("ZTSP_TENANT_TEMPLATE_SCHEMA", default="tenant_template")
ZTSP_TENANT_CREATE_METHOD = env.str("ZTSP_TENANT_CREATE_METHOD", default="clone")
# The schema policy of tenant deletion: "archive" renames the schema to
# archived_<schema>_<UTC timestamp> and keeps its data, "drop" deletes it.
ZTSP_TENANT_DELETE_POLICY = env.str("ZTSP_TENANT_DELETE_POLICY", default="archive")
for _name, _value, _choices in (("ZTSP_TENANT_CREATE_METHOD", ZTSP_TENANT_CREATE_METHOD, ("clone", "migrate")),
                                ("ZTSP_TENANT_DELETE_POLICY", ZTSP_TENANT_DELETE_POLICY, ("archive", "drop"))):
    if _value not in _choices:
        raise ImproperlyConfigured(f"{_name}={_value!r} is invalid; set it to one of {', '.join(_choices)}.")

# Operations endpoints (ops app): /healthz, /readyz and /metrics on the public host names.
# Scrapers of /metrics and of the worker's and gateway's metrics ports send
# "Authorization: Bearer <token>"; with no token set, only loopback clients may scrape.
_metrics_token_file = env.str("ZTSP_METRICS_TOKEN_FILE", default="")
ZTSP_METRICS_TOKEN = env.str("ZTSP_METRICS_TOKEN", default="") or (
    Path(_metrics_token_file).read_text().strip() if _metrics_token_file else "")
# The metrics HTTP servers of the Celery worker and the tunnel gateway (0 = off) and their address.
ZTSP_METRICS_BIND = env.str("ZTSP_METRICS_BIND", default="127.0.0.1")
ZTSP_WORKER_METRICS_PORT = env.int("ZTSP_WORKER_METRICS_PORT", default=0)
ZTSP_GATEWAY_METRICS_PORT = env.int("ZTSP_GATEWAY_METRICS_PORT", default=0)
# Seconds the gauges read from the database (onboard requests, certificates, tunnels) are reused between scrapes.
ZTSP_METRICS_CACHE_SECONDS = env.float("ZTSP_METRICS_CACHE_SECONDS", default=10.0)
# Seconds each readiness check (PostgreSQL connect and queries, Redis ping) may take.
ZTSP_READINESS_TIMEOUT = env.float("ZTSP_READINESS_TIMEOUT", default=2.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # django_tenants.log.TenantContextFilter, extended to the request's or tunnel's tenant in other threads.
    "filters": {"tenant_context": {"()": "common.log_context.TenantContextFilter"}},
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s [%(schema_name)s] %(name)s: %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["tenant_context"],
            "formatter": "plain",
        },
    },
    "root": {"handlers": ["console"], "level": env.str("ZTSP_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}
