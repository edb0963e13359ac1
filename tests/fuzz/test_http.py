"""Generated HTTP requests against every route of auth-web: never a 5xx, always a clear 4xx for bad input."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from auth_web.blueprints.auth import safe_next

from .budget import count, fuzz_settings
from .harness import PASSWORD, Accounts, Browser, age_challenge, build_app, check_response, good_frames, good_times
from .media import image_bytes

# -- strategies ---------------------------------------------------------------------------------------------

NASTY_TEXT = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\t\r\n",
    "\u202e\u200b\ufeff",
    "\U0001f600",
    "é" * 40,
    "A" * 5000,
    "../../etc/passwd",
    "%00%0a%0d%09%5c%2F",
    "%",
    "%zz",
    "<script>alert(1)</script>",
    "{{7*7}}",
    "' OR 1=1 --",
    "\\",
    "//evil.example",
    "/%09/evil.example/phish",
    "/%0a/evil.example",
    "https:",
    "NaN",
    "Infinity",
    "-1",
    "0",
    "99999999999999999999999999",
    "1e999",
    "null",
    "[]",
    "{}",
)
text = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=60), st.text(alphabet="abc./-_%09AZ", max_size=20))
header_text = st.one_of(
    st.sampled_from(["", "null", "https://evil.example", "127.0.0.1", "10.0.0.1, 127.0.0.1", "a" * 4000, "%00"]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80),
)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**200), max_value=2**200), st.floats(), text
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
HEADER_NAMES = (
    "Accept",
    "Accept-Language",
    "Content-Type",
    "Origin",
    "Referer",
    "User-Agent",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Request-ID",
    "X-CSRFToken",
    "If-None-Match",
    "If-Modified-Since",
    "Range",
    "Cookie",
)
headers = st.dictionaries(st.sampled_from(HEADER_NAMES), header_text, max_size=4)
addresses = st.one_of(
    st.sampled_from(["127.0.0.1", "::1", "10.1.2.3"]),
    st.ip_addresses().map(str),  # 127.0.0.1: trusted proxy
)


def deep(opening: str, closing: str) -> st.SearchStrategy[str]:
    return st.integers(100, 100_000).map(lambda depth: opening * depth + closing * depth)


raw_json_bodies = st.one_of(
    json_values.map(lambda value: json.dumps(value, allow_nan=True)),
    st.builds(lambda name: json.dumps({"username": name}, allow_nan=True), json_values),
    deep("[", "]"),
    deep('{"a":', "}").map(lambda body: body.replace("}", "1}", 1)),
    st.integers(100, 100_000).map(lambda depth: '{"username": ' + "[" * depth + "]" * depth + "}"),
    st.sampled_from(
        [
            '{"username": "\\ud800"}',
            '{"username": "a\\u0000b"}',
            '{"username": "fuzz\\udfff"}',
            '{"username": NaN}',
            '{"username": Infinity}',
            '{"username": -Infinity}',
            '{"username": 1e99999}',
            '{"username": "' + "a" * 100_000 + '"}',
            '{"username": "ok", "username": ["dup"]}',
            "",
            "{",
            '"username"',
            "\ufeff{}",
        ]
    ),
)
body_bytes = st.one_of(raw_json_bodies.map(str.encode), st.binary(max_size=300))
CONTENT_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=x",
    "application/octet-stream",
    "",
)


def frame_times() -> st.SearchStrategy[str | None]:
    number = st.one_of(st.integers(-(2**70), 2**70), st.floats(), st.sampled_from([0, 100, 120_000, 120_001]))
    return st.one_of(
        st.none(),
        st.sampled_from(["", "Infinity", "[Infinity]", "[NaN]", "[-Infinity]", "[1e999]", "[1e308, 1e309]", "null"]),
        st.lists(number, max_size=40).map(lambda values: json.dumps(values, allow_nan=True)),
        st.integers(1, 20).map(lambda n: json.dumps([i * 100 for i in range(n)])),
        json_values.map(lambda value: json.dumps(value, allow_nan=True)),
        deep("[", "]"),
        text,
    )


frames = st.one_of(
    st.lists(image_bytes(), max_size=20),
    st.lists(image_bytes(), min_size=5, max_size=8),
    st.integers(0, 40).map(good_frames),  # well-formed but too few / too many
    st.integers(5, 16).map(good_frames),
    st.integers(5, 16).map(good_frames).flatmap(lambda good: image_bytes().map(lambda bad: [*good[:-1], bad])),
    st.lists(image_bytes(), max_size=3),
    st.just([b"\xff\xd8\xff" + b"\x00" * (1024 * 1024 + 10)]),  # one frame over the byte cap (rarely: slow)
)


# -- the app ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cheap_password_hashing() -> Iterator[None]:
    """argon2 at its smallest cost: this tier tests input handling, and every fuzzed login or registration that
    gets as far as the password would otherwise spend ~40 ms of CPU on it (the real cost is tested elsewhere)."""
    from argon2 import PasswordHasher

    from auth_web import accounts

    with pytest.MonkeyPatch.context() as patch:
        if hasattr(accounts, "_hasher"):
            cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
            patch.setattr(accounts, "_hasher", cheap)
            if hasattr(accounts, "_DUMMY_HASH"):
                patch.setattr(accounts, "_DUMMY_HASH", cheap.hash("faceauth-dummy-password-for-constant-time"))
        yield


@pytest.fixture(scope="module")
def app(fuzz_database_url: str, fuzz_redis_prefix: str, cheap_password_hashing: None) -> Flask:
    return build_app(fuzz_database_url, fuzz_redis_prefix)


@pytest.fixture(scope="module")
def accounts(app: Flask, fuzz_database_url: str) -> Accounts:
    return Accounts(app, fuzz_database_url)


@pytest.fixture(scope="module")
def anonymous(app: Flask) -> Iterator[Browser]:
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    yield browser


def _rules(app: Flask) -> list[Any]:
    return sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule)


def _argument(converter: str, keep: set[int]) -> st.SearchStrategy[Any]:
    if converter == "IntegerConverter":  # user ids: any, but not the fixed accounts (an admin could disable them)
        return st.one_of(st.integers(-(2**70), 2**70), st.integers(0, 8)).filter(lambda value: value not in keep)
    if converter == "PathConverter":
        return st.one_of(
            st.sampled_from(["css/app.css", "js/capture.js", "../app.py", "..%2fapp.py", "img/", "x" * 300]), text
        )
    return text


def _path(rule: Any, values: dict[str, Any], quoted: bool) -> str:
    def substitute(match: re.Match[str]) -> str:
        value = str(values[match.group(1)])
        return quote(value, safe="/") if quoted else value.replace("?", "%3F").replace("#", "%23")

    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", substitute, rule.rule)


def _send(browser: Browser, method: str, path: str, name: str, **options: Any):  # type: ignore[no-untyped-def]
    response = browser.client.open(path, method=method, **options)
    count(name)
    check_response(response, path.split("?", 1)[0], method)
    return response


# -- every route, any method, headers, query strings, bodies ---------------------------------------------------


@fuzz_settings(0.30)
@given(data=st.data())
def test_every_route_answers_4xx_not_5xx(
    app: Flask, accounts: Accounts, anonymous: Browser, data: st.DataObject
) -> None:
    rule = data.draw(st.sampled_from(_rules(app)), label="rule")
    values = {
        name: data.draw(_argument(type(conv).__name__, accounts.fixed_ids), label=name)
        for name, conv in rule._converters.items()
    }
    path = _path(rule, values, quoted=data.draw(st.booleans(), label="quoted"))
    methods = sorted((rule.methods or {"GET"}) - {"OPTIONS"})
    method = data.draw(st.one_of(st.sampled_from(methods), st.sampled_from(["PUT", "DELETE", "PATCH", "OPTIONS"])))
    query = data.draw(st.one_of(st.just(""), st.lists(st.tuples(text, text), max_size=4).map(urlencode), text))
    role = data.draw(st.sampled_from(["anonymous", "user", "admin"]), label="role")
    browser = anonymous if role == "anonymous" else accounts.signed_in(role)
    request_headers = data.draw(headers, label="headers")
    if data.draw(st.booleans(), label="csrf"):
        request_headers["X-CSRFToken"] = browser.csrf
    body_kind = data.draw(st.sampled_from(["none", "json", "form", "bytes"]), label="body")
    options: dict[str, Any] = {"headers": request_headers, "environ_overrides": {"REMOTE_ADDR": data.draw(addresses)}}
    if body_kind == "json":
        options["data"] = data.draw(raw_json_bodies)
        options["content_type"] = "application/json"
    elif body_kind == "form":
        options["data"] = data.draw(st.dictionaries(text, text, max_size=5))
    elif body_kind == "bytes":
        options["data"] = data.draw(body_bytes)
        options["content_type"] = data.draw(st.sampled_from(CONTENT_TYPES))
    if method in ("GET", "HEAD", "OPTIONS", "DELETE") and body_kind != "none" and data.draw(st.booleans()):
        options.pop("data", None)
        options.pop("content_type", None)
    full = f"{path}?{quote(query, safe='=&%') if data.draw(st.booleans()) else query}" if query else path
    accounts.used(role, method, path)
    _send(browser, method, full, "http: every route", **options)


# -- the login challenge: JSON bodies -------------------------------------------------------------------------


@fuzz_settings(0.16)
@given(body=raw_json_bodies, content_type=st.sampled_from(CONTENT_TYPES[:4]), address=addresses)
def test_login_challenge_json(anonymous: Browser, body: str, content_type: str, address: str) -> None:
    response = _send(
        anonymous,
        "POST",
        "/api/login/challenge",
        "http: login challenge JSON",
        data=body,
        content_type=content_type,
        headers={"X-CSRFToken": anonymous.csrf},
        environ_overrides={"REMOTE_ADDR": address},
    )
    assert response.status_code in (200, 400, 413), response.get_json()
    if response.status_code == 200:
        assert isinstance(json.loads(body)["username"], str)


# -- the capture uploads: multipart frames and frame_times_ms ------------------------------------------------


@fuzz_settings(0.08)
@given(
    username=st.one_of(st.just("victim"), st.text(alphabet="abcdefgh0123456789._-", min_size=3, max_size=12)),
    nonce_kind=st.sampled_from(["issued", "issued", "random", "none"]),
    nonce=text,
    password=st.one_of(st.just(PASSWORD), text),
    times=frame_times(),
    captured=frames,
    extra=st.dictionaries(st.sampled_from(["nonce", "password", "frame_times_ms", "frames", "x"]), text, max_size=2),
    address=addresses,
)
def test_login_capture_multipart(
    app: Flask,
    accounts: Accounts,
    username: str,
    nonce_kind: str,
    nonce: str,
    password: str,
    times: str | None,
    captured: list[bytes],
    extra: dict[str, str],
    address: str,
) -> None:
    browser = _login_browser(app)
    target = accounts.victim if username == "victim" else username
    if nonce_kind == "issued":
        challenge = browser.challenge(target)
        count("http: login capture multipart (its challenge)")
        check_response(challenge, "/api/login/challenge", "POST")
        assert challenge.status_code in (200, 400), challenge.get_json()
        nonce = (challenge.get_json() or {}).get("nonce", nonce)
    fields: dict[str, Any] = {**extra, "password": password}
    if nonce_kind != "none":
        fields["nonce"] = nonce
    if times is not None:
        fields["frame_times_ms"] = times
    response = browser.submit("/api/login", fields, captured, environ_overrides={"REMOTE_ADDR": address})
    count("http: login capture multipart")
    check_response(response, "/api/login", "POST")
    assert response.status_code in (200, 400, 401, 413, 429), response.get_json()
    if response.status_code == 200:
        _LOGIN_BROWSER.clear()  # signed in now (and its CSRF token went with the old session)


_LOGIN_BROWSER: list[Browser] = []


def _login_browser(app: Flask) -> Browser:
    """An anonymous browser for the login fuzzer, replaced once a fuzzed login signs it in."""
    if not _LOGIN_BROWSER:
        browser = Browser(app.test_client())
        browser.refresh_csrf()
        _LOGIN_BROWSER.append(browser)
    return _LOGIN_BROWSER[0]


@fuzz_settings(0.04)
@given(
    nonce_kind=st.sampled_from(["issued", "issued", "random"]),
    nonce=text,
    times=frame_times(),
    captured=frames,
)
def test_enroll_capture_multipart(
    accounts: Accounts, nonce_kind: str, nonce: str, times: str | None, captured: list[bytes]
) -> None:
    browser = accounts.signed_in("user")
    if nonce_kind == "issued":
        challenge = browser.client.post("/api/enroll/challenge", headers={"X-CSRFToken": browser.csrf})
        assert challenge.status_code == 200, challenge.get_json()
        nonce = challenge.get_json()["nonce"]
    fields = {"nonce": nonce} if times is None else {"nonce": nonce, "frame_times_ms": times}
    response = browser.submit("/api/enroll", fields, captured)
    count("http: enroll capture multipart")
    check_response(response, "/api/enroll", "POST")
    assert response.status_code in (200, 400, 413, 422), response.get_json()


# -- forms: register, logout, face data, sessions --------------------------------------------------------------


@fuzz_settings(0.04)
@given(
    path=st.sampled_from(["/register", "/register", "/logout", "/enroll/delete", "/account/sessions/{}/revoke"]),
    handle=text,
    form=st.fixed_dictionaries(
        {},
        optional={"username": text, "password": text, "confirm": text, "csrf_token": text, "x": text},
    ),
    with_token=st.booleans(),
)
def test_forms(app: Flask, accounts: Accounts, path: str, handle: str, form: dict[str, str], with_token: bool) -> None:
    if path == "/register":
        browser = Browser(app.test_client())
        browser.refresh_csrf("/register")
    else:
        browser = accounts.signed_in("user")
    if with_token:
        form = {**form, "csrf_token": browser.csrf}
    if path == "/register" and form.get("password") and "confirm" not in form:
        form["confirm"] = form["password"]
    target = path.format(quote(handle, safe="")) if "{}" in path else path
    accounts.used("user", "POST", target)
    _send(browser, "POST", target, "http: forms", data=form)


# -- admin pages: search, filters, paging, actions -------------------------------------------------------------


@fuzz_settings(0.04)
@given(data=st.data())
def test_admin(accounts: Accounts, data: st.DataObject) -> None:
    admin = accounts.signed_in("admin")
    kind = data.draw(st.sampled_from(["users", "audit", "action"]))
    page = st.one_of(st.integers(-(2**70), 2**70).map(str), text)
    if kind == "users":
        query = data.draw(st.fixed_dictionaries({}, optional={"q": text, "page": page}))
        _send(admin, "GET", f"/admin/users?{urlencode(query)}", "http: admin")
    elif kind == "audit":
        names = ["username", "user_id", "event", "result", "reason", "page"]
        query = data.draw(st.dictionaries(st.sampled_from(names), st.one_of(text, page), max_size=6))
        _send(admin, "GET", f"/admin/audit?{urlencode(query)}", "http: admin")
    else:
        user_id = data.draw(
            st.one_of(st.integers(0, 50), st.integers(-(2**70), 2**70)).filter(lambda i: i not in accounts.fixed_ids)
        )
        action = data.draw(st.sampled_from(["disable", "enable", "delete", "nope"]))
        form = {"csrf_token": admin.csrf} if data.draw(st.booleans()) else {}
        accounts.used("admin", "POST", f"/admin/users/{user_id}/{action}")
        _send(admin, "POST", f"/admin/users/{user_id}/{action}", "http: admin", data=form)


# -- /login?next=… ----------------------------------------------------------------------------------------------

DATA_NEXT = re.compile(r'data-next="([^"]*)"')


@fuzz_settings(0.04)
@given(
    raw=st.one_of(
        text,
        st.builds(lambda a, b: a + b, st.sampled_from(["/", "//", "/\\", "\\", "/%09/", "/%0a", "https:", " "]), text),
    ),
    quoted=st.booleans(),
)
def test_login_next_never_leaves_the_site(anonymous: Browser, raw: str, quoted: bool) -> None:
    query = urlencode({"next": raw}) if quoted else "next=" + raw.replace("&", "%26").replace("#", "%23")
    response = _send(anonymous, "GET", f"/login?{query}", "http: login next")
    assert response.status_code == 200
    match = DATA_NEXT.search(response.get_data(as_text=True))
    if match:
        import html

        shown = html.unescape(match.group(1))
        assert safe_next(shown) == shown
        assert shown.startswith("/") and not shown.startswith(("//", "/\\")) and shown.isprintable()


# -- the three 500s of issue 13, and the other findings: named regressions ----------------------------------------


def test_regression_deeply_nested_json_on_the_challenge_is_400(anonymous: Browser) -> None:
    """Was a RecursionError → 500."""
    for body in ("[" * 100_000 + "]" * 100_000, '{"username": ' + "[" * 50_000 + "]" * 50_000 + "}"):
        response = anonymous.client.post(
            "/api/login/challenge", data=body, content_type="application/json", headers={"X-CSRFToken": anonymous.csrf}
        )
        assert response.status_code == 400, response.get_data()[:200]
        assert response.get_json()["error"] == "bad_request"


def test_regression_nul_byte_in_the_username_is_400(app: Flask, accounts: Accounts) -> None:
    """Was a 500 at login: Postgres refuses NUL in text (the challenge stored the name, the attempt queried it)."""
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    for name in (accounts.victim + "\x00", "a\x00b", "\x00", "bad\u0007name"):
        response = browser.challenge(name)
        assert response.status_code == 400, response.get_json()
        assert response.get_json()["error"] == "bad_username"
    lone_surrogate = browser.client.post(
        "/api/login/challenge",
        data='{"username": "ab\\ud800c"}',
        content_type="application/json",
        headers={"X-CSRFToken": browser.csrf},
    )
    assert lone_surrogate.status_code == 400


def test_regression_frame_times_infinity_is_400(app: Flask, accounts: Accounts) -> None:
    """Was an OverflowError (round(inf)) → 500."""
    for times in ("Infinity", "[Infinity, 0, 0, 0, 0, 0]", "[0, 1, 2, 3, 4, -Infinity]", "[NaN, 0, 0, 0, 0, 0]"):
        browser = Browser(app.test_client())
        browser.refresh_csrf()
        nonce = browser.challenge(accounts.victim).get_json()["nonce"]
        fields = {"nonce": nonce, "password": PASSWORD, "frame_times_ms": times}
        response = browser.submit("/api/login", fields, good_frames())
        check_response(response, "/api/login")
        assert response.status_code in (400, 401), response.get_json()
        assert response.get_json()["error"] in ("bad_capture", "login_failed")


def test_regression_huge_admin_page_and_id_are_4xx(accounts: Accounts) -> None:
    """Were 503s: Postgres refused an OFFSET or id beyond bigint (DataError, mapped to 'database down')."""
    admin = accounts.signed_in("admin")
    for path in ("/admin/users?page=99999999999999999999", "/admin/audit?page=99999999999999999999"):
        response = admin.client.get(path)
        assert response.status_code < 500, path
    response = admin.client.post("/admin/users/99999999999999999999/disable", data={"csrf_token": admin.csrf})
    assert response.status_code == 404


def test_regression_nul_in_admin_filters_is_not_a_5xx(accounts: Accounts) -> None:
    """Was a 500: Postgres refuses NUL in the LIKE pattern / the equality filters."""
    admin = accounts.signed_in("admin")
    for path in ("/admin/users?q=a%00b", "/admin/audit?username=a%00b&event=%00&reason=%00&result=%00"):
        response = admin.client.get(path)
        assert response.status_code in (200, 400), (path, response.status_code)


def test_a_good_login_still_works(app: Flask, accounts: Accounts) -> None:
    """The fuzzers' refusals must not come from a broken flow: the same requests, well formed, succeed."""
    browser = Browser(app.test_client())
    browser.refresh_csrf()
    nonce = browser.challenge(accounts.victim).get_json()["nonce"]
    age_challenge(app, nonce, 5.0)  # the page's placement wait, flash and capture (auth-web's time limit)
    fields = {"nonce": nonce, "password": PASSWORD, "frame_times_ms": good_times(), "flash_start_ms": "0"}
    response = browser.submit("/api/login", fields, good_frames())
    assert response.status_code == 200, response.get_json()


def test_regression_json_body_on_a_form_is_4xx(accounts: Accounts, anonymous: Browser) -> None:
    """Was a 500 (found by this tier): Flask-WTF read a JSON body that is no object (`true`) as form data."""
    user = accounts.signed_in("user")
    for browser, path in ((user, "/enroll/delete"), (user, "/logout"), (anonymous, "/register")):
        for body in ("true", "[1, 2]", '{"csrf_token": [1]}', "null"):
            response = browser.client.post(
                path, data=body, content_type="application/json", headers={"X-CSRFToken": browser.csrf}
            )
            assert response.status_code == 415, (path, body, response.status_code)


def test_regression_invalid_host_is_400(anonymous: Browser) -> None:
    """Was a 500 (found by this tier): a host label over 63 characters left Flask without a URL adapter, and
    the error page itself failed. Directly (Host) and through the trusted proxy (X-Forwarded-Host)."""
    for headers, address in (
        ({"Host": "a" * 100}, "203.0.113.5"),
        ({"X-Forwarded-Host": "a" * 100}, "127.0.0.1"),
        ({"X-Forwarded-Host": "x." + "b" * 70 + ".example"}, "127.0.0.1"),
    ):
        for path in ("/", "/login", "/api/login/challenge", "/static/css/app.css"):
            response = anonymous.client.get(path, headers=headers, environ_overrides={"REMOTE_ADDR": address})
            check_response(response, path)
            assert response.status_code == 400, (headers, path)
            assert response.get_json()["error"] == "bad_host"


def test_regression_login_page_drops_the_reported_open_redirects(anonymous: Browser) -> None:
    """Issue 13: /login?next=/%09/evil.example/phish (and %0a) put a next URL on the page that Chromium followed
    to evil.example. The page now carries no next URL for them, and keeps a local one."""
    for query in ("next=/%09/evil.example/phish", "next=/%0a/evil.example/phish", "next=/%5Cevil.example"):
        page = anonymous.client.get(f"/login?{query}").get_data(as_text=True)
        assert "data-next" not in page, query
    assert 'data-next="/account"' in anonymous.client.get("/login?next=/account").get_data(as_text=True)
