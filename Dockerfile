# Production image: the web server by default; the worker and the tunnel
# gateway run from the same image with another command. Requires
# DATABASE_URL, REDIS_URL, DJANGO_SECRET_KEY, ZTSP_DATA_KEYS, ZTSP_HASH_KEY
# and DJANGO_ALLOWED_HOSTS.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ZTSP_ENV=production \
    ZTSP_EMBEDDED=0 \
    DJANGO_SETTINGS_MODULE=config.settings \
    DJANGO_STATIC_ROOT=/app/static

RUN apt-get update \
    && apt-get install --yes --no-install-recommends openssl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 ztsp

WORKDIR /app
COPY pyproject.toml README.md ./
COPY common ./common
COPY config ./config
COPY demo ./demo
COPY provisioning ./provisioning
COPY msp ./msp
COPY tenants ./tenants
COPY onboarding ./onboarding
COPY pki ./pki
COPY gateway ./gateway
COPY audit ./audit
COPY est ./est
COPY ec_client ./ec_client
COPY manage.py ./
RUN pip install --no-cache-dir . \
    && DJANGO_SECRET_KEY=build ZTSP_DATA_KEYS=$(python -c "import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode())") \
       ZTSP_HASH_KEY=build DATABASE_URL=postgres://unused/unused REDIS_URL=redis://unused \
       python manage.py collectstatic --noinput

USER ztsp
EXPOSE 8000 8443 8444
CMD ["uvicorn", "config.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--lifespan", "off", "--proxy-headers"]
