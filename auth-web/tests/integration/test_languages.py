"""Every page in German with the real app (issue 16 item 6): chosen by Accept-Language or the switcher's cookie,
``<html lang="de">``, the script strings as a JSON data block, and no English left — no English message of the
catalogue (longer than a word) appears in the German page's visible text."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.header import decode_header, make_header
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from flask import Flask
from sqlalchemy.orm import Session

from auth_web import js_strings
from auth_web.models import User

from .conftest import Browser, create_user, sign_in_directly, unique_username
from .test_accounts_recovery import Inbox, mail_settings, smtp_server  # noqa: F401 (the fixture)
from .test_oidc import ISSUER, authorize, register

TRANSLATIONS = Path(__file__).resolve().parents[2] / "auth_web" / "translations"
GERMAN = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}
# Attributes whose text a person reads (or hears) as well as the element's own text.
READ_ATTRIBUTES = ("placeholder", "aria-label", "title", "alt", "data-confirm")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}")
TAG = re.compile(r"<[^>]+>")


class _VisibleText(HTMLParser):
    """The text a person reads: element text (not scripts, styles or code samples) and the read attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping: list[str] = []
        self.i18n_block: str | None = None
        self._in_i18n = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("id") == "i18n":
            self._in_i18n = True
        if tag in ("script", "style", "code"):
            self.skipping.append(tag)
        for name in READ_ATTRIBUTES:
            if values.get(name):
                self.parts.append(str(values[name]))

    def handle_endtag(self, tag: str) -> None:
        if self.skipping and self.skipping[-1] == tag:
            self.skipping.pop()
        if tag == "script":
            self._in_i18n = False

    def handle_data(self, data: str) -> None:
        if self._in_i18n:
            self.i18n_block = (self.i18n_block or "") + data
        elif not self.skipping:
            self.parts.append(data)


def visible(page: str) -> _VisibleText:
    parser = _VisibleText()
    parser.feed(page)
    return parser


def _words(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class Catalogue:
    english_fragments: frozenset[str]  # pieces of English messages, two words or more, between placeholders/tags
    german: dict[str, str]  # English singular → German


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    with (TRANSLATIONS / "de" / "LC_MESSAGES" / "messages.po").open("rb") as file:
        po = read_po(file)
    german_texts = []
    german: dict[str, str] = {}
    fragments: set[str] = set()
    for entry in po:
        if not entry.id:
            continue
        ids = (entry.id,) if isinstance(entry.id, str) else entry.id
        strings = (entry.string,) if isinstance(entry.string, str) else entry.string
        german[ids[0]] = strings[0]
        german_texts.extend(strings)
        for text in ids:
            for piece in PLACEHOLDER.split(TAG.sub("\n", text)):
                for line in piece.split("\n"):
                    fragment = _words(line).strip(" ,.;:()“”\"'—–-")
                    if len(fragment.split()) >= 2:
                        fragments.add(fragment)
    # What a German translation keeps verbatim (a command, a product name) is not "English left".
    kept = {fragment for fragment in fragments if any(fragment in text for text in german_texts)}
    return Catalogue(frozenset(fragments - kept), german)


def assert_german(page: str, catalogue: Catalogue, where: str) -> None:
    """``<html lang="de">``, the script strings' block, and no English fragment in what a person reads."""
    assert re.search(r'<html lang="de">', page), where
    parsed = visible(page)
    text = _words(" ".join(parsed.parts))
    left = sorted(fragment for fragment in catalogue.english_fragments if fragment in text)
    assert not left, f"{where}: English left: {left[:10]}"
    assert parsed.i18n_block is not None, where
    strings = json.loads(parsed.i18n_block)
    assert set(strings) == set(js_strings.STRINGS), where
    assert strings["capture.place_face"] == catalogue.german["Place your face in the oval."] != ""


@dataclass
class Site:
    app: Flask
    engine: object
    admin_id: int
    admin_name: str
    other_id: int
    other_name: str


@pytest.fixture
def site(make_app: Callable[..., Flask], db_engine) -> Site:  # type: ignore[no-untyped-def]
    app = make_app(smtp_host="127.0.0.1", smtp_from="faceauth@example.com", oidc_issuer=ISSUER)
    admin_name, other_name = unique_username("chefin"), unique_username("nutzer")
    admin_id = create_user(db_engine, admin_name, role="admin", templates=2)
    other_id = create_user(db_engine, other_name, templates=1)
    return Site(app, db_engine, admin_id, admin_name, other_id, other_name)


def german_browser(site: Site, how: str) -> Browser:
    browser = Browser(site.app.test_client())
    if how == "cookie":
        browser.client.set_cookie("lang", "de")
    else:
        browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = GERMAN["Accept-Language"]
    return browser


def pages(site: Site, how: str) -> Iterator[tuple[str, int, str]]:
    """(where, status, page) of every kind of page, as a German-speaking visitor, user and admin see them."""
    anonymous = german_browser(site, how)
    for path, status in (("/login", 200), ("/register", 200), ("/recover/forgot", 200), ("/no/such/page", 404)):
        response = anonymous.client.get(path)
        assert response.status_code == status, path
        yield path, response.status_code, response.get_data(as_text=True)
    # A registration with mistakes: our messages and WTForms' own, in German.
    anonymous.refresh_csrf("/register")
    response = anonymous.client.post(
        "/register", data={"username": "", "password": "x", "confirm": "y", "csrf_token": anonymous.csrf}
    )
    yield "/register (errors)", response.status_code, response.get_data(as_text=True)
    response = anonymous.client.get("/recover/not-a-real-token")
    yield "/recover/<unknown>", response.status_code, response.get_data(as_text=True)

    admin = german_browser(site, how)
    sign_in_directly(admin, site.admin_id)
    for path in (
        "/account",
        "/account/password",
        "/enroll",
        "/enroll/delete",
        "/reauth",
        "/admin/users",
        "/admin/audit",
        "/admin/flash",
        "/admin/clients",
        "/admin/groups",
    ):
        response = admin.client.get(path)
        yield path, response.status_code, response.get_data(as_text=True)
    admin.refresh_csrf("/admin/users")
    response = admin.client.post(
        f"/admin/users/{site.other_id}/recovery-link", data={"purpose": "both", "csrf_token": admin.csrf}
    )
    link_page = response.get_data(as_text=True)
    yield "/admin/users/<id>/recovery-link", response.status_code, link_page

    # The recovery link as its holder follows it: the start page, then the password step.
    token = re.search(r'id="recovery-url" value="[^"]*/recover/([^"]+)"', link_page)
    assert token, link_page
    holder = german_browser(site, how)
    response = holder.client.get(f"/recover/{token.group(1)}")
    yield "/recover/<token>", response.status_code, response.get_data(as_text=True)
    holder.refresh_csrf(f"/recover/{token.group(1)}")
    holder.client.post(f"/recover/{token.group(1)}", data={"csrf_token": holder.csrf})
    response = holder.client.get("/recover")
    yield "/recover (password step)", response.status_code, response.get_data(as_text=True)

    # The consent screen of an app that is not first-party.
    client = register(site.engine, name="Zeiterfassung")
    user = german_browser(site, how)
    sign_in_directly(user, site.other_id)
    response = authorize(user, client.client_id)
    yield "/oauth2/authorize (consent)", response.status_code, response.get_data(as_text=True)


@pytest.mark.parametrize("how", ["accept-language", "cookie"])
def test_every_page_is_german_with_no_english_left(site: Site, catalogue: Catalogue, how: str) -> None:
    seen = []
    for where, status, page in pages(site, how):
        assert status in (200, 400, 404), (where, status)
        assert_german(page, catalogue, f"{where} ({how})")
        seen.append(where)
    assert len(seen) == 20


def test_the_check_finds_english_left(site: Site, catalogue: Catalogue) -> None:
    """The no-English check itself: an English page (passed off as German) and one English sentence slipped into a
    German page both fail it."""
    english = Browser(site.app.test_client()).client.get("/login").get_data(as_text=True)
    with pytest.raises(AssertionError, match="English left") as caught:
        assert_german(english.replace('<html lang="en">', '<html lang="de">'), catalogue, "/login (en)")
    assert "Sign in with your face" in str(caught.value)
    german = german_browser(site, "cookie").client.get("/login").get_data(as_text=True)
    assert_german(german, catalogue, "/login (de)")
    slipped = german.replace("</main>", "<p>Your camera turns on when you start.</p></main>")
    with pytest.raises(AssertionError, match="Your camera turns on when you start"):
        assert_german(slipped, catalogue, "/login (de, one sentence English)")
    # A placeholder's neighbours count too: "Hello, %(name)s" leaves "Hello," (one word: not checked), while
    # "Recovery link for %(name)s" leaves "Recovery link for".
    with pytest.raises(AssertionError, match="Recovery link for"):
        assert_german(german.replace("</main>", "<h2>Recovery link for bob</h2></main>"), catalogue, "/login")
    assert len(catalogue.english_fragments) > 400


def test_german_pages_say_the_expected_things(site: Site) -> None:
    browser = german_browser(site, "accept-language")
    login = browser.client.get("/login")
    assert login.headers["Content-Language"] == "de"
    assert "Accept-Language" in login.headers["Vary"]
    page = login.get_data(as_text=True)
    assert "Mit Ihrem Gesicht anmelden" in page
    assert '<label for="username">Benutzername</label>' in page
    browser.refresh_csrf("/register")
    errors = browser.client.post(
        "/register", data={"username": "ab", "password": "x", "confirm": "y", "csrf_token": browser.csrf}
    ).get_data(as_text=True)
    assert "Die beiden Passwörter stimmen nicht überein." in errors
    assert "Feld muss zwischen 3 und 32 Zeichen beinhalten." in errors  # WTForms' own message, from its catalogue
    sign_in_directly(browser, site.admin_id)
    account = browser.client.get("/account").get_data(as_text=True)
    assert f"Hallo, {site.admin_name}" in account
    assert "2 Gesichtsvorlagen" in account  # ngettext: the plural form
    # The prompts of a challenge come in the page's language too.
    visitor = german_browser(site, "cookie")
    visitor.refresh_csrf("/login")
    challenge = visitor.post_json("/api/login/challenge", {"username": site.other_name}).get_json()
    english = {"Blink your eyes", "Turn your head to your left", "Turn your head to your right"}
    assert challenge["prompts"] and not set(challenge["prompts"]) & english, challenge


def test_english_stays_as_it_was(site: Site) -> None:
    browser = Browser(site.app.test_client())
    page = browser.client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"}).get_data(as_text=True)
    assert '<html lang="en">' in page and "Sign in with your face" in page
    # No Accept-Language at all: English.
    assert '<html lang="en">' in browser.client.get("/login").get_data(as_text=True)


def test_the_switcher_sets_the_cookie_and_goes_back_to_a_local_page_only(site: Site) -> None:
    browser = Browser(site.app.test_client())
    page = browser.client.get("/register").get_data(as_text=True)
    switcher = re.search(r'<nav class="language-switcher" aria-label="Language">(.*?)</nav>', page, re.S)
    assert switcher, page
    assert '<span lang="en" aria-current="true">English</span>' in switcher.group(1)
    link = re.search(r'<a href="([^"]+)" lang="de" hreflang="de">Deutsch</a>', switcher.group(1))
    assert link and link.group(1) == "/language/de?next=/register"
    response = browser.client.get(link.group(1).replace("&amp;", "&"))
    assert response.status_code == 302 and response.headers["Location"] == "/register"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("lang=de;") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    german = browser.client.get("/register").get_data(as_text=True)
    assert '<html lang="de">' in german
    assert re.search(r'<a href="/language/en\?next=/register" lang="en" hreflang="en">English</a>', german)
    # Back to English, even against the browser's Accept-Language.
    browser.client.get("/language/en?next=/register")
    page = browser.client.get("/register", headers=GERMAN).get_data(as_text=True)
    assert '<html lang="en">' in page
    # The way back is a local path: another site, a scheme-relative URL or a backslash trick goes to the start.
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "/%09/evil.example", "javascript:x"):
        response = browser.client.get("/language/de", query_string={"next": evil})
        assert response.status_code == 302 and response.headers["Location"] == "/", evil
    # The switcher keeps the page's query (a sign-in's way back), but not a ``next`` that leaves the site.
    browser.client.get("/language/en?next=/login")
    page = browser.client.get("/login?next=/account/password").get_data(as_text=True)
    link = re.search(r'<a href="(/language/de\?next=[^"]+)"', page)
    assert link and link.group(1) == "/language/de?next=/login?next%3D%252Faccount%252Fpassword", link
    response = browser.client.get(link.group(1))
    assert response.headers["Location"] == "/login?next=%2Faccount%2Fpassword"
    page = site.app.test_client().get("/login?next=//evil.example/&x=1").get_data(as_text=True)
    assert "evil.example" not in page and 'href="/language/de?next=/login?x%3D1"' in page
    # Only shipped, offered languages.
    assert browser.client.get("/language/xx?next=/login").status_code == 404
    assert browser.client.get("/language/..%2Fde").status_code == 404


def test_only_the_offered_languages_are_used_and_listed(make_app: Callable[..., Flask]) -> None:
    app = make_app(languages=("en",))
    client = app.test_client()
    page = client.get("/login", headers=GERMAN).get_data(as_text=True)
    assert '<html lang="en">' in page and "language-switcher" not in page
    assert client.get("/language/de?next=/login").status_code == 404


def test_the_script_strings_are_data_the_csp_does_not_run(site: Site) -> None:
    response = Browser(site.app.test_client()).client.get("/login", headers=GERMAN)
    page = response.get_data(as_text=True)
    blocks = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", page)
    assert blocks == [' type="application/json" id="i18n"'], blocks
    assert "script-src 'self' 'wasm-unsafe-eval';" in response.headers["Content-Security-Policy"]
    data = visible(page).i18n_block
    assert data is not None and "</" not in data  # tojson escapes "<": nothing can close the block early
    assert json.loads(data)["guide.placed"] != "Good, hold still."


def test_the_recovery_mail_speaks_the_language_of_the_page_that_asked(
    make_app: Callable[..., Flask],
    db_engine,  # type: ignore[no-untyped-def]
    smtp_server: tuple[Inbox, int],  # noqa: F811
    catalogue: Catalogue,
) -> None:
    """The mail is written off the request thread (mail.Mailer.in_background), in the asking page's language."""
    inbox, port = smtp_server
    app = make_app(
        **mail_settings(port),
        public_url="https://faceauth.example",
    )
    names = {language: unique_username(f"post{language}") for language in ("de", "en")}
    with Session(db_engine) as session:
        for name in names.values():
            user = session.get(User, create_user(db_engine, name, templates=1))
            user.email, user.email_key = f"{name}@example.com", f"{name}@example.com"
        session.commit()
    for count, (language, name) in enumerate(names.items(), start=1):
        browser = Browser(app.test_client())
        browser.client.set_cookie("lang", language)
        browser.refresh_csrf("/recover/forgot")
        page = browser.client.post("/recover/forgot", data={"csrf_token": browser.csrf, "identifier": name})
        assert page.status_code == 200
        if language == "de":
            assert_german(page.get_data(as_text=True), catalogue, "/recover/forgot (answered)")
        inbox.wait(count)
        assert len(inbox.messages) == count
    mails = {recipients[0]: message for recipients, message in inbox.messages}
    german, english = mails[f"{names['de']}@example.com"], mails[f"{names['en']}@example.com"]
    assert str(make_header(decode_header(german["Subject"]))) == "Ihr faceauth-Wiederherstellungslink"
    body = german.get_payload(decode=True).decode().replace("\r\n", "\n")
    assert body.startswith(f"Hallo {names['de']},\n\njemand (hoffentlich Sie)")
    assert "Mit diesem Link können Sie ein Passwort festlegen:" in body and "https://faceauth.example/recover/" in body
    assert not [fragment for fragment in catalogue.english_fragments if fragment in body], body
    assert str(make_header(decode_header(english["Subject"]))) == "Your faceauth recovery link"
    assert (
        english.get_payload(decode=True)
        .decode()
        .replace("\r\n", "\n")
        .startswith(f"Hello {names['en']},\n\nsomeone (hopefully you)")
    )
