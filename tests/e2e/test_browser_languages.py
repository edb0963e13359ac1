"""A German browser (Chromium with ``--lang=de`` and Accept-Language German) through the whole stack: the sign-in
page, the camera step's script-set texts (status, framing hints, prompt, verdict) all German, no CSP violation from
the script strings' JSON block; then the footer's switcher back to English (issue 16 item 6)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from babel.messages.pofile import read_po
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from auth_web import js_strings
from auth_web.accounts import hash_password, normalize_username
from auth_web.login import GENERIC_FAILURE
from auth_web.login_flow import FACE_ADVICE
from auth_web.models import FaceTemplate, User
from auth_web.template_crypto import cipher_from_env

from .browser import RESULT_TIMEOUT, Browser
from .conftest import PASSWORD
from .stack import Stack

GERMAN_PO = Path(__file__).resolve().parents[2] / "auth-web" / "auth_web" / "translations" / "de" / "LC_MESSAGES"

# Every English text the page's scripts could show (outside a request the catalogue answers in English).
ENGLISH_SCRIPT_TEXTS = {str(text) for text in js_strings.STRINGS.values()}
ENGLISH_VERDICTS = {str(text) for text in FACE_ADVICE.values()} | {str(GENERIC_FAILURE)}

# Collects every text the status line, the framing hint and the prompt bubble show, as they change.
WATCH_TEXTS = """
window.__seenTexts = [];
new MutationObserver(function () {
  ["capture-status", "capture-hint", "capture-prompt", "capture-placeholder-text"].forEach(function (id) {
    var node = document.getElementById(id);
    var text = node && node.textContent.trim();
    if (text && window.__seenTexts.indexOf(text) < 0) { window.__seenTexts.push(text); }
  });
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


def _english_in(text: str) -> list[str]:
    """English sentences of the scripts or the verdicts inside ``text`` (with their placeholders as wildcards)."""
    found = []
    for english in ENGLISH_SCRIPT_TEXTS | ENGLISH_VERDICTS:
        pieces = [piece.strip() for piece in english.replace("}", "{").split("{")[::2] if len(piece.split()) >= 2]
        found.extend(piece for piece in pieces if piece in text)
    return found


def german(english: str) -> str:
    """The shipped German translation of an English message."""
    with (GERMAN_PO / "messages.po").open("rb") as file:
        entry = read_po(file).get(english)
    assert entry is not None and entry.string, english
    return str(entry.string)


def someone_elses_face(stack: Stack, db: Engine) -> str:
    """A user with PASSWORD and a made-up face template sealed with the stack's template key: the password step
    passes, the capture is checked for real, and the face (A's video) does not match it."""
    username = f"jemand_{secrets.token_hex(3)}"
    cipher = cipher_from_env({"FACEAUTH_TEMPLATE_KEY": stack.child_env["FACEAUTH_TEMPLATE_KEY"]})
    with Session(db) as session:
        user = User(username=username, username_key=normalize_username(username), password_hash=hash_password(PASSWORD))
        session.add(user)
        session.flush()
        template = [0.01 * ((i % 7) - 3) for i in range(128)]
        session.add(FaceTemplate.seal(template, user_id=user.id, model_version="e2e", cipher=cipher, quality=0.9))
        session.commit()
    return username


def test_a_german_browser_walks_to_the_camera_in_german_and_switches_back(
    stack: Stack,
    cameras: Callable[[str], Path],
    camera_scripts: Callable[..., list[str]],
    db: Engine,
    output_dir: Path,
) -> None:
    username = someone_elses_face(stack, db)
    person = Browser(cameras("a_login"), scripts=[*camera_scripts("a_login"), WATCH_TEXTS], language="de-DE,de")
    try:
        person.open(stack.base_url, "/login")
        driver: WebDriver = person.driver
        assert driver.execute_script("return document.documentElement.lang") == "de"
        assert person.text("main h1") == "Anmelden"
        assert person.text("#start-button") == "Mit Ihrem Gesicht anmelden"
        assert person.text("#capture-placeholder-text") == "Ihre Kamera schaltet sich ein, wenn Sie beginnen."
        assert not _english_in(person.page_text()), _english_in(person.page_text())
        # An empty form: the script's own check speaks German.
        driver.find_element(By.ID, "start-button").click()
        person.wait(lambda d: person.text("#capture-status") != "")
        assert person.text("#capture-status") == "Bitte geben Sie Ihren Benutzernamen ein."

        person.fill("#username", username)
        person.fill("#password", PASSWORD)
        kind, verdict = person.capture(RESULT_TIMEOUT)
        seen = driver.execute_script("return window.__seenTexts")
        assert kind == "error", verdict
        # The walk: starting the camera, the framing hints, the announcement with the prompts, the capture, the check.
        assert "Kamera wird gestartet …" in seen, seen
        assert any("startet die Aufnahme von selbst" in text for text in seen), seen
        assert any(text.startswith("Aufnahme läuft") for text in seen), seen
        assert any(text.startswith("Als Nächstes:") for text in seen), seen
        assert not [text for text in seen if _english_in(text)], [text for text in seen if _english_in(text)]
        # The verdict after a right password: what went wrong with the face, in German.
        assert verdict in {german(str(advice)) for advice in FACE_ADVICE.values()}, verdict
        assert not _english_in(person.page_text()), _english_in(person.page_text())
        person.screenshot(output_dir / "languages_de_login.png")  # also: no script error, no CSP violation

        # The footer's switcher: English, and it stays English (a cookie) against the browser's German.
        driver.find_element(By.CSS_SELECTOR, ".language-switcher a[hreflang=en]").click()
        person.wait(lambda d: d.execute_script("return document.documentElement.lang") == "en")
        assert person.path().startswith("/login")
        assert person.text("main h1") == "Sign in"
        assert person.text("#start-button") == "Sign in with your face"
        person.open(stack.base_url, "/register")
        assert person.text("main h1") == "Create your account"
        assert person.text(".language-switcher [aria-current]") == "English"
        person.screenshot(output_dir / "languages_back_to_english.png")
    finally:
        person.quit()
