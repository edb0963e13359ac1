"""Languages of the pages (Flask-Babel): which one a request gets, the switcher's cookie, the catalogues.

The choice, in order: the ``lang`` cookie the switcher sets (``/language/<code>``, a link in every page's footer),
else the best match of the browser's ``Accept-Language`` among the shipped languages (``AUTH_LANGUAGES``), else
English. Templates, Python messages and the pages' script strings (``js_strings.py``) come from one catalogue,
``auth_web/translations`` (``make translations`` refreshes it; tests/unit/test_translations.py guards it).

Not translated, on purpose: audit events and reason codes, metric labels, log lines, the JSON ``error`` codes — what
operators and programs read. The JSON ``message`` a person reads is.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

from flask import Flask, Response, current_app, has_request_context, request
from flask_babel import Babel, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

#: Where the catalogues are (``<code>/LC_MESSAGES/messages.po`` and its compiled ``.mo``).
TRANSLATIONS = Path(__file__).resolve().parent / "translations"
#: The cookie the switcher sets: a language code among the shipped ones (anything else is ignored).
COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 86400
DEFAULT = "en"
#: Every language's own name (an endonym: the switcher shows it the same in every language).
NAMES = {"en": "English", "de": "Deutsch"}
_LANGUAGES = "FACEAUTH_LANGUAGES"

#: The words shown for stored values (roles, account states, audit results); the value itself stays in forms,
#: URLs and the database. An unknown value is shown as it is.
_VALUE_LABELS = {
    "admin": _l("admin"),
    "user": _l("user"),
    "active": _l("active"),
    "disabled": _l("disabled"),
    "success": _l("success"),
    "failure": _l("failure"),
    "error": _l("error"),
}


def value_label(value: str) -> str:
    label = _VALUE_LABELS.get(value)
    return str(label) if label is not None else value


def shipped() -> tuple[str, ...]:
    """English (the messages' own language) and every language with a catalogue in ``translations/``."""
    found = sorted(path.parent.parent.name for path in TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"))
    return (DEFAULT, *[code for code in found if code != DEFAULT])


def check_languages(codes: tuple[str, ...]) -> tuple[str, ...]:
    """AUTH_LANGUAGES checked: shipped codes, each once (ValueError otherwise)."""
    available = shipped()
    unknown = [code for code in codes if code not in available]
    if unknown or not codes or len(set(codes)) != len(codes):
        raise ValueError(f"must list some of the shipped languages {list(available)}, each once; got {list(codes)}")
    return codes


def languages() -> tuple[str, ...]:
    """The languages this deployment offers (AUTH_LANGUAGES), the fallback first."""
    return tuple(current_app.config[_LANGUAGES])


def select_locale() -> str:
    """The request's language: the switcher's cookie, else Accept-Language's best match, else the first offered
    language (English by default). Outside a request (the CLI; a background mail uses ``force_locale``): that first
    language too."""
    offered = languages()
    if not has_request_context():
        return offered[0]
    chosen = request.cookies.get(COOKIE, "")
    if chosen in offered:
        return chosen
    return request.accept_languages.best_match(offered, default=offered[0]) or offered[0]


def locale_name() -> str:
    """The request's locale as Babel names it (``de``, ``pt_BR``), for ``flask_babel.force_locale`` off the request
    thread (a background mail in the language of the page that asked for it)."""
    locale = get_locale()
    return str(locale) if locale is not None else DEFAULT


def current() -> str:
    """The language of this request (``de``, ``en``), as ``<html lang>`` says it."""
    locale = get_locale()
    return str(locale).replace("_", "-") if locale is not None else DEFAULT


def init_app(app: Flask, offered: tuple[str, ...]) -> None:
    app.config[_LANGUAGES] = offered
    app.config["BABEL_DEFAULT_LOCALE"] = DEFAULT
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    Babel(app, locale_selector=select_locale)

    @app.context_processor
    def _language_globals() -> dict[str, object]:
        from auth_web import js_strings

        return {
            "html_lang": current,
            "language_links": _language_links,
            "js_strings": js_strings.catalogue,
            "value_label": value_label,
        }

    @app.after_request
    def _content_language(response: Response) -> Response:
        # The same URL answers in several languages: caches (and the browser's back button) must know.
        if response.mimetype == "text/html":
            response.vary.add("Accept-Language")
            response.vary.add("Cookie")
            response.headers.setdefault("Content-Language", current())
        return response


def _language_links() -> list[dict[str, object]]:
    """The footer's switcher: one link per offered language back to this page (``next``), the current one marked."""
    from flask import url_for

    from auth_web.blueprints.auth import safe_next

    if not has_request_context():
        return []
    # Back to this page with its query, except a ``next`` that is not a local path (never echoed into the page).
    kept = [(key, value) for key, value in request.args.items(multi=True) if key != "next" or safe_next(value)]
    here = request.path + ("?" + urlencode(kept) if kept else "")
    active = current()
    return [
        {
            "code": code,
            "name": NAMES.get(code, code),
            "url": url_for("language.choose", code=code, next=here),
            "current": code == active,
        }
        for code in languages()
    ]


# -- accounts.py's rule messages ----------------------------------------------------------------------------------
# accounts.py (no Flask) raises its ValidationError in English; the pages say it in the request's language. Each
# message it can raise is matched here (tests/unit/test_translations.py fails on one that is not); any other
# ValidationError (account_security.py) is already translated where it is raised.

_AT_LEAST = re.compile(r"Use at least (\d+) characters for your password\.")
_AT_MOST = re.compile(r"Use at most (\d+) characters for your password\.")


def rule_message(error: Exception) -> str:
    """The message of an accounts.py ``ValidationError`` in this request's language."""
    from auth_web.accounts import USERNAME_RULES

    message = str(error)
    if message == f"Usernames are {USERNAME_RULES}.":
        return _(
            "Usernames are 3 to 32 characters: letters, digits, '.', '_' or '-', starting and ending with a letter "
            "or digit."
        )
    if found := _AT_LEAST.fullmatch(message):
        return _("Use at least %(count)s characters for your password.", count=int(found.group(1)))
    if found := _AT_MOST.fullmatch(message):
        return _("Use at most %(count)s characters for your password.", count=int(found.group(1)))
    if message == "That password is too simple; mix more different characters.":
        return _("That password is too simple; mix more different characters.")
    if message == "Your password must not contain your username.":
        return _("Your password must not contain your username.")
    return message
