"""What Django's debug error page may show of the settings."""

from __future__ import annotations

import re

from django.views.debug import SafeExceptionReporterFilter


class SettingsFilter(SafeExceptionReporterFilter):
    """Masks, besides Django's own list, settings named like URLs or cache locations.

    ``REDIS_URL``, ``CELERY_BROKER_URL`` and a cache's ``LOCATION`` may
    carry a password (``redis://:password@host``), and Django masks only
    names that contain API, AUTH, TOKEN, KEY, SECRET, PASS, SIGNATURE or
    HTTP_COOKIE.
    """

    hidden_settings = re.compile(SafeExceptionReporterFilter.hidden_settings.pattern + "|URL|LOCATION",
                                 flags=re.IGNORECASE)
