"""A short, readable name for a User-Agent string ("Chrome on Linux"), for the list of a user's sessions.

Only a display aid: User-Agent strings are whatever the client sends, so nothing here is a security decision.
The order of the checks matters because browsers copy each other's tokens (Edge and Opera also say "Chrome/",
Chrome also says "Safari/", iPhones say "like Mac OS X", Android says "Linux").
"""

from __future__ import annotations

import re

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

# (token in the string, name shown), first match wins.
_BROWSERS: tuple[tuple[str, str], ...] = (
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("Edge/", "Edge"),  # EdgeHTML, before Chromium
    ("OPR/", "Opera"),
    ("OPiOS/", "Opera"),
    ("Opera", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("YaBrowser/", "Yandex Browser"),
    ("Vivaldi/", "Vivaldi"),
    ("FxiOS/", "Firefox"),
    ("Firefox/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("HeadlessChrome/", "Headless Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("MSIE ", "Internet Explorer"),
    ("Trident/", "Internet Explorer"),
)
_SAFARI = re.compile(r"Version/[\d.]+.*Safari/")

_SYSTEMS: tuple[tuple[str, str], ...] = (
    ("Windows Phone", "Windows Phone"),
    ("Windows", "Windows"),
    ("iPhone", "iOS"),
    ("iPod", "iOS"),
    ("iPad", "iPadOS"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Macintosh", "macOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
    ("FreeBSD", "FreeBSD"),
    ("OpenBSD", "OpenBSD"),
)
# The first product token of a non-browser client: "curl/8.5.0" -> "curl", "python-httpx/0.27" -> "python-httpx".
_PRODUCT = re.compile(r"^([A-Za-z][\w.+-]{0,39})/")

UNKNOWN = _l("Unknown browser")


def browser_name(agent: str) -> str | None:
    for token, name in _BROWSERS:
        if token in agent:
            return name
    if _SAFARI.search(agent):
        return "Safari"
    return None


def system_name(agent: str) -> str | None:
    for token, name in _SYSTEMS:
        if token in agent:
            return name
    return None


def describe_user_agent(agent: str | None) -> str:
    """A short name such as "Chrome on Linux", "Safari on iOS", "Firefox" or "curl"; ``UNKNOWN`` if none fits."""
    agent = (agent or "").strip()
    if not agent:
        return str(UNKNOWN)
    browser, system = browser_name(agent), system_name(agent)
    if browser is None:
        product = _PRODUCT.match(agent)
        if product is None or product.group(1) == "Mozilla":
            return _("Unknown browser on %(system)s", system=system) if system else str(UNKNOWN)
        browser = product.group(1)
    return _("%(browser)s on %(system)s", browser=browser, system=system) if system else browser
