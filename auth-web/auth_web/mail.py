"""Outgoing mail (SMTP_*): the self-service recovery links. Off when SMTP_HOST is empty.

Mail is sent off the request thread (a small pool): the request that asked for a link answers at once, the same
way whether or not an account matched, so neither the answer nor its time says whether an address is known.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import make_msgid

from auth_web.config import Settings

log = logging.getLogger(__name__)


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="faceauth-mail")

    @property
    def enabled(self) -> bool:
        return bool(self.settings.smtp_host)

    def send(self, to: str, subject: str, body: str) -> None:
        """Send one plain-text mail now (raises smtplib.SMTPException or OSError when it cannot)."""
        config = self.settings
        message = EmailMessage()
        message["From"] = config.smtp_from
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain=config.smtp_from.rpartition("@")[2] or None)
        message.set_content(body)
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if config.smtp_security == "tls":
            smtp = smtplib.SMTP_SSL(
                config.smtp_host, config.smtp_port, timeout=config.smtp_timeout_seconds, context=context
            )
        else:
            smtp = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.smtp_timeout_seconds)
        with smtp:
            if config.smtp_security == "starttls":
                smtp.starttls(context=context)
            if config.smtp_username:
                smtp.login(config.smtp_username, config.smtp_password)
            smtp.send_message(message)

    def in_background(self, job: Callable[[], None]) -> Future[None]:
        """Run ``job`` off the request thread; its failures are logged, never raised into a request."""

        def run() -> None:
            try:
                job()
            except Exception:  # a background job has nobody to raise to
                log.exception("mail_job_failed")

        return self._pool.submit(run)
