"""Pages as served: field errors tied to their fields, times as <time> in UTC for page.js, no inline script."""

from __future__ import annotations

import datetime as dt
import re

from .conftest import Browser, unique_username

TIME_TAG = re.compile(
    r'<time datetime="(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)" data-precision="(\w+)" title="([^"]+)">([^<]+)</time>'
)


def _input(page: str, name: str) -> str:
    match = re.search(rf'<input [^>]*name="{name}"[^>]*>', page)
    assert match, page
    return match.group(0)


def test_register_errors_are_tied_to_their_fields(make_app) -> None:  # type: ignore[no-untyped-def]
    browser = Browser(make_app().test_client())
    browser.refresh_csrf("/register")
    response = browser.client.post(
        "/register", data={"username": "ab", "password": "x", "confirm": "y", "csrf_token": browser.csrf}
    )
    page = response.get_data(as_text=True)
    assert response.status_code in (200, 400), page
    invalid = {name: _input(page, name) for name in ("username", "confirm")}
    for name, tag in invalid.items():
        assert 'aria-invalid="true"' in tag, tag
        described = re.search(r'aria-describedby="([^"]+)"', tag)
        assert described, tag
        ids = described.group(1).split()
        assert ids[0] == f"{name}-errors"
        for element_id in ids:  # every id named exists once on the page
            assert page.count(f'id="{element_id}"') == 1, element_id
        errors = re.search(rf'<ul class="errors" id="{name}-errors">(.*?)</ul>', page, re.S)
        assert errors and "<li>" in errors.group(1)
    assert "The two passwords differ." in page


def test_password_change_errors_are_tied_to_their_fields(make_app) -> None:  # type: ignore[no-untyped-def]
    browser = Browser(make_app().test_client())
    assert browser.register(unique_username()).status_code == 302  # signed in, freshly
    browser.refresh_csrf("/account/password")
    response = browser.client.post(
        "/account/password",
        data={
            "current": "not my password",
            "password": "a new long passphrase",
            "confirm": "a new long passphrase",
            "csrf_token": browser.csrf,
        },
    )
    page = response.get_data(as_text=True)
    tag = _input(page, "current")
    assert 'aria-invalid="true"' in tag and 'aria-describedby="current-errors"' in tag, tag
    assert re.search(r'<ul class="errors" id="current-errors"><li>That is not your current password.</li>', page)
    # The rule for a new password is the new password's hint, not a loose paragraph.
    assert 'aria-describedby="password-help"' in _input(page, "password")
    assert "aria-invalid" not in _input(page, "password")


def test_register_page_without_errors_marks_nothing_invalid(make_app) -> None:  # type: ignore[no-untyped-def]
    page = make_app().test_client().get("/register").get_data(as_text=True)
    assert "aria-invalid" not in page
    assert 'aria-describedby="username-help"' in _input(page, "username")


def test_account_times_are_time_elements_in_utc(make_app) -> None:  # type: ignore[no-untyped-def]
    browser = Browser(make_app().test_client())
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    assert browser.register(unique_username()).status_code == 302
    page = browser.client.get("/account").get_data(as_text=True)
    times = TIME_TAG.findall(page)
    assert times, page
    for instant, precision, title, text in times:
        moment = dt.datetime.fromisoformat(instant.replace("Z", "+00:00"))
        assert before - dt.timedelta(seconds=1) <= moment <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        assert precision in ("date", "minute", "second")
        assert title.endswith(" UTC")
        assert text.startswith(moment.strftime("%Y-%m-%d"))
    # The page's own script rewrites them; it is a file of the site, never inline (the CSP says script-src 'self').
    assert re.search(r'<script src="/static/js/page\.js[^"]*" defer></script>', page)
    # The one script element without src is the script strings' JSON data block (i18n.py), which no browser runs.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == ['<script type="application/json" id="i18n">']
    assert "script-src 'self'" in browser.client.get("/account").headers["Content-Security-Policy"]


def test_page_script_is_served(make_app) -> None:  # type: ignore[no-untyped-def]
    response = make_app().test_client().get("/static/js/page.js")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "Intl.DateTimeFormat" in body and "data-label" in body


def test_the_detectors_wasm_is_served_and_the_csp_allows_wasm_but_not_eval(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app().test_client()
    response = client.get("/login")
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in response.headers["Content-Security-Policy"].split("; ")
    )
    # WebAssembly compilation for the guidance's detector, and nothing else: no eval() of JavaScript, no inline.
    assert directives["script-src"] == ["'self'", "'wasm-unsafe-eval'"]
    assert not any("'unsafe-eval'" in sources or "'unsafe-inline'" in sources for sources in directives.values())
    page = response.get_data(as_text=True)
    wasm_url = re.search(r'data-detector-wasm="([^"]+)"', page)
    assert wasm_url and wasm_url.group(1) == "/static/vendor/tfjs-backend-wasm@4.22.0/"
    # tfjs fetches <prefix><name>.wasm and compiles it streaming, which needs the application/wasm type.
    for name in ("tfjs-backend-wasm-simd.wasm", "tfjs-backend-wasm.wasm"):
        binary = client.get(wasm_url.group(1) + name)
        assert binary.status_code == 200
        assert binary.mimetype == "application/wasm"
        assert binary.get_data()[:4] == b"\0asm"
    assert client.get(wasm_url.group(1) + "tfjs-backend-wasm-threaded-simd.wasm").status_code == 404
