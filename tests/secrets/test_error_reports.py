"""Django's debug error page hides the Redis and broker URLs, which may carry a password."""

from __future__ import annotations

from django.test import override_settings
from django.views.debug import get_default_exception_reporter_filter

REDIS_WITH_PASSWORD = "redis://:broker-password-0123456789@redis.example:6379/0"


@override_settings(REDIS_URL=REDIS_WITH_PASSWORD, CELERY_BROKER_URL=REDIS_WITH_PASSWORD,
                   CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                       "LOCATION": REDIS_WITH_PASSWORD}})
def test_debug_page_masks_service_urls():
    shown = get_default_exception_reporter_filter().get_safe_settings()

    assert REDIS_WITH_PASSWORD not in repr(shown)
    assert shown["REDIS_URL"] != REDIS_WITH_PASSWORD
    assert shown["CELERY_BROKER_URL"] != REDIS_WITH_PASSWORD
    assert shown["CACHES"]["default"]["LOCATION"] != REDIS_WITH_PASSWORD


def test_debug_page_still_masks_django_secrets():
    shown = get_default_exception_reporter_filter().get_safe_settings()

    assert set(shown["SECRET_KEY"]) == {"*"}
    assert set(shown["ZTSP_DATA_KEYS"]) == {"*"}
