"""An email backend for the DEBUG stack: messages go to a JSON-lines file, never to a log.

The stack's processes use it (``DJANGO_EMAIL_BACKEND``) so the test can
read the password-reset link, while the console backend would put the link
into the web server's log.
"""

from __future__ import annotations

import json
import os

from django.core.mail.backends.base import BaseEmailBackend

MAILBOX_VARIABLE = "ZTSP_TEST_MAILBOX"


class MailboxBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        with open(os.environ[MAILBOX_VARIABLE], "a") as handle:
            for message in email_messages:
                handle.write(json.dumps({"to": message.to, "subject": message.subject, "body": message.body}) + "\n")
        return len(email_messages)
