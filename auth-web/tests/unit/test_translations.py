"""The catalogue (issue 16 item 6): complete for every shipped language, fresh against the sources, compiled; the
language a request gets; the pages' script strings; accounts.py's English rule messages said in German.

A new English string in a template, a Python message or static/js without its German translation fails here
(``make translations`` adds it to the .po files untranslated; translate it there).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask_babel import force_locale, gettext

from auth_web import accounts, i18n, js_strings
from auth_web.config import Settings, SettingsError

AUTH_WEB = Path(__file__).resolve().parents[2]
TRANSLATIONS = AUTH_WEB / "auth_web" / "translations"
POT = TRANSLATIONS / "messages.pot"
SCRIPTS = AUTH_WEB / "auth_web" / "static" / "js"
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}")
TAG = re.compile(r"<[^>]+>")
SCRIPT_KEY = re.compile(r"\bt\(\s*\"([\w.]+)\"")
TRANSLATED = tuple(code for code in i18n.shipped() if code != i18n.DEFAULT)


def _read_po(path: Path) -> Catalog:
    with path.open("rb") as file:
        return read_po(file)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The catalogue as `make translations` extracts it from the sources now (scripts/translations.sh)."""
    out = tmp_path_factory.mktemp("pot") / "messages.pot"
    arguments = ["pybabel", "-q", "extract", "-F", str(AUTH_WEB / "babel.cfg"), "-k", "_l", "-k", "lazy_gettext"]
    CommandLineInterface().run([*arguments, "-o", str(out), str(AUTH_WEB)])
    return _read_po(out)


def _ids(catalog: Catalog) -> set[object]:
    return {message.id for message in catalog if message.id}


def _texts(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def test_the_catalogue_is_extracted_from_templates_python_and_script_strings(extracted: Catalog) -> None:
    ids = _ids(extracted)
    assert len(ids) > 300
    # One of each kind of source: a template, a WTForms label, a module constant, a script string, a plural.
    assert "Sign in with your face" in ids
    assert "Repeat password" in ids
    assert "Blink your eyes" in ids
    assert "Good, hold still." in ids
    assert ("{count} face template", "{count} face templates") not in ids  # Jinja plurals use %(count)s
    assert ("%(count)s face template", "%(count)s face templates") in ids


def test_the_pot_file_is_not_stale(extracted: Catalog) -> None:
    committed = _ids(_read_po(POT))
    missing, stale = _ids(extracted) - committed, committed - _ids(extracted)
    assert not missing and not stale, (
        f"run `make translations`: new {sorted(map(str, missing))[:10]}, gone {sorted(map(str, stale))[:10]}"
    )


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated_and_none_is_fuzzy(extracted: Catalog, language: str) -> None:
    catalog = _read_po(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po")
    problems = []
    for source in extracted:
        if not source.id:
            continue
        entry = catalog.get(source.id)
        if entry is None:
            problems.append(f"missing: {source.id!r}")
        elif entry.fuzzy:
            problems.append(f"fuzzy: {source.id!r}")
        elif not all(_texts(entry.string)) or (source.pluralizable and len(_texts(entry.string)) < catalog.num_plurals):
            problems.append(f"untranslated: {source.id!r}")
    assert not problems, f"{language}: {len(problems)} problems, e.g. {problems[:8]}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_every_placeholder_and_tag(language: str) -> None:
    """A translation that drops ``%(name)s`` or ``<strong>`` would fail at run time or change the page's markup."""
    catalog = _read_po(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po")
    problems = []
    for entry in catalog:
        if not entry.id or not entry.string:
            continue
        ids, strings = _texts(entry.id), _texts(entry.string)
        want = {p for text in ids for p in PLACEHOLDER.findall(text)}
        got = {p for text in strings for p in PLACEHOLDER.findall(text)}
        # A singular form may leave out its count ("one face template"); nothing else may go, nothing may be added.
        if not got <= want or want - got - {"%(num)d", "%(count)s"}:
            problems.append(f"{entry.id!r}: placeholders {sorted(want)} → {sorted(got)}")
        if sorted(TAG.findall(ids[0])) != sorted(TAG.findall(strings[0])):
            problems.append(f"{entry.id!r}: tags {TAG.findall(ids[0])} → {TAG.findall(strings[0])}")
    assert not problems, problems[:8]


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_compiled_catalogue_matches_its_po_file(language: str) -> None:
    folder = TRANSLATIONS / language / "LC_MESSAGES"
    compiled = folder / "messages.mo"
    assert compiled.is_file(), f"{compiled} is missing: `make setup` (or `make translations`) compiles it"
    with compiled.open("rb") as file:
        mo = read_mo(file)
    stale = [
        entry.id
        for entry in _read_po(folder / "messages.po")
        if entry.id
        and not entry.fuzzy
        and (mo.get(entry.id) is None or _texts(mo.get(entry.id).string) != _texts(entry.string))
    ]
    assert not stale, f"{compiled} is older than its .po (`make setup` compiles it): {stale[:5]}"


# -- the pages' script strings ----------------------------------------------------------------------------------


def _script_keys() -> dict[str, set[str]]:
    return {path.name: set(SCRIPT_KEY.findall(path.read_text(encoding="utf-8"))) for path in SCRIPTS.glob("*.js")}


def test_every_key_the_scripts_use_is_in_the_script_catalogue_and_every_entry_is_used() -> None:
    used = _script_keys()
    everything = set().union(*used.values())
    assert {"capture.js", "guidance.js", "login.js", "passkeys.js", "webauthn.js", "admin.js"} <= {
        name for name, keys in used.items() if keys
    }
    assert everything - set(js_strings.STRINGS) == set(), "t() keys without a string in auth_web/js_strings.py"
    assert set(js_strings.STRINGS) - everything == set(), "js_strings.py entries no script uses"


def test_no_script_keeps_a_sentence_of_its_own() -> None:
    """Words a person reads come from the catalogue: a quoted English sentence left in a page script is a bug."""
    sentence = re.compile(r"\"[A-Z][a-z]+(?: [a-z']+){2,}[^\"]*\"")
    found = {
        path.name: sentence.findall(path.read_text(encoding="utf-8"))
        for path in SCRIPTS.glob("*.js")
        if sentence.findall(path.read_text(encoding="utf-8"))
    }
    assert not found, found


# -- the language a request gets ----------------------------------------------------------------------------------


def _app(offered: tuple[str, ...] = ("en", "de")) -> Flask:
    app = Flask("i18n-test", root_path=str(AUTH_WEB / "auth_web"))
    i18n.init_app(app, offered)
    return app


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "en"),
        ({"Accept-Language": "de-DE,de;q=0.9,en;q=0.8"}, "de"),
        ({"Accept-Language": "de-AT"}, "de"),  # a regional variant falls back to its language
        ({"Accept-Language": "fr-FR,fr;q=0.9"}, "en"),  # nothing shipped: English
        ({"Accept-Language": "fr;q=1, de;q=0.5"}, "de"),
        ({"Accept-Language": "en;q=0.9, de;q=1"}, "de"),
        ({"Accept-Language": "de", "Cookie": "lang=en"}, "en"),  # the switcher's choice wins
        ({"Accept-Language": "en", "Cookie": "lang=de"}, "de"),
        ({"Accept-Language": "de", "Cookie": "lang=xx"}, "de"),  # an unknown cookie is ignored
        ({"Accept-Language": "%%%; q=nonsense"}, "en"),
    ],
)
def test_locale_selection(headers: dict[str, str], expected: str) -> None:
    app = _app()
    with app.test_request_context("/", headers=headers):
        assert i18n.select_locale() == expected
        assert i18n.current() == expected


def test_a_language_not_offered_is_not_chosen_and_the_first_offered_is_the_fallback() -> None:
    app = _app(("de", "en"))
    with app.test_request_context("/", headers={"Accept-Language": "fr"}):
        assert i18n.select_locale() == "de"
    app = _app(("en",))
    with app.test_request_context("/", headers={"Accept-Language": "de", "Cookie": "lang=de"}):
        assert i18n.select_locale() == "en"


def test_outside_a_request_the_fallback_language_is_used_unless_forced() -> None:
    app = _app()
    with app.app_context():
        assert i18n.select_locale() == "en"
    # A background job (the recovery mail) in the language of the request that asked for it.
    with app.app_context(), force_locale("de"):
        assert gettext("Your faceauth recovery link") != "Your faceauth recovery link"
    with app.app_context():
        assert gettext("Your faceauth recovery link") == "Your faceauth recovery link"


def test_auth_languages_setting() -> None:
    assert Settings.from_env({}).languages == ("en", "de")
    assert Settings.from_env({"AUTH_LANGUAGES": "de, en"}).languages == ("de", "en")
    assert Settings.from_env({"AUTH_LANGUAGES": "en"}).languages == ("en",)
    assert Settings.from_env({"AUTH_LANGUAGES": ""}).languages == ("en", "de")  # empty: the default, as elsewhere
    for bad in ("en,xx", "de,de", "../de", " , "):
        with pytest.raises(SettingsError, match="AUTH_LANGUAGES"):
            Settings.from_env({"AUTH_LANGUAGES": bad})


# -- accounts.py's rule messages (raised in English, shown in the request's language) -----------------------------


RULE_BREAKERS = [
    lambda: accounts.validate_username("a"),
    lambda: accounts.validate_password("short", "bob", 10),
    lambda: accounts.validate_password("x" * (accounts.PASSWORD_MAX_LENGTH + 1), "bob", 10),
    lambda: accounts.validate_password("aaaaaaaaaaaaaa", "bob", 10),
    lambda: accounts.validate_password("hello-bob-12345", "bob", 10),
]


def test_every_rule_message_of_accounts_is_translated() -> None:
    source = ast.parse(Path(accounts.__file__).read_text(encoding="utf-8"))
    raised = [
        node
        for node in ast.walk(source)
        if isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Call)
        and getattr(node.exc.func, "id", "") == "ValidationError"
    ]
    assert len(raised) == len(RULE_BREAKERS), "a new ValidationError in accounts.py: add it to i18n.rule_message"
    app = _app()
    seen = set()
    for breaker in RULE_BREAKERS:
        with pytest.raises(accounts.ValidationError) as raised_error:
            breaker()
        english = str(raised_error.value)
        with app.test_request_context("/", headers={"Accept-Language": "en"}):
            assert i18n.rule_message(raised_error.value) == english
        with app.test_request_context("/", headers={"Accept-Language": "de"}):
            translated = i18n.rule_message(raised_error.value)
        assert translated != english, english
        assert re.findall(r"\d+", translated) == re.findall(r"\d+", english), (english, translated)
        seen.add(english)
    assert len(seen) == len(RULE_BREAKERS)
