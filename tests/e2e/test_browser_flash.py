"""The screen-flash challenge in a real browser (issue 12): what the page paints, a camera that does not see the screen,
and the admin's calibration page.

The other scenarios (test_browser_login.py) run with the flash on too: every clip's camera reflects the page's
colours (tests/e2e/relight.py), as a real face in front of the screen does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from auth_web.flash import LEAD_MS
from auth_web.login_flow import FACE_ADVICE
from auth_web.models import ROLE_ADMIN, ROLE_USER, User

from .browser import Browser
from .conftest import PASSWORD, PersonA, account_with_a_face, audit_events
from .relight import FLASH_RECORDER
from .stack import Stack

MIN_STEP_MS = 334  # WCAG 2.3.1: at most three changes a second
_SHOWN = re.compile(r"rgba?\((\d+), (\d+), (\d+)(?:, ([\d.]+))?\) (\d+)x(\d+)")


def painted_steps(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The flash layer's visible states in order: colour (#rrggbb), size, start time, duration (to the next change)."""
    changes = record["painted"]
    steps = []
    for index, change in enumerate(changes):
        if change["shown"] is None:
            continue
        match = _SHOWN.fullmatch(change["shown"])
        assert match, change
        red, green, blue, alpha, width, height = match.groups()
        assert alpha in (None, "1"), f"the flash layer is not opaque: {change}"
        following = changes[index + 1]["at"] if index + 1 < len(changes) else None
        steps.append(
            {
                "colour": f"#{int(red):02x}{int(green):02x}{int(blue):02x}",
                "size": f"{width}x{height}",
                "viewport": change["viewport"],
                "status_background": change["status_background"],
                "duration": None if following is None else following - change["at"],
            }
        )
    return steps


def flash_record(browser: Browser) -> dict[str, Any]:
    """What FLASH_RECORDER saw on the capture page (kept across the redirect after a sign-in)."""
    record = browser.script_state("__faceauthFlashRecord")
    assert record is not None, "the flash recorder did not run"
    if not record["challenges"] and record.get("previous"):
        record = record["previous"]
    else:
        record["relight"] = browser.script_state("__faceauthRelight")
    assert record["challenges"], "no challenge was recorded"
    return record


def test_7_the_flash_shows_the_issued_colours_in_order(
    person_a: PersonA,
    stack: Stack,
    browser: Callable[..., Browser],
    db: Engine,
    output_dir,  # type: ignore[no-untyped-def]
) -> None:
    before = len(audit_events(db, person_a.username))
    person = browser("a_login", scripts=(FLASH_RECORDER,))
    kind, message = person.login(stack.base_url, person_a.username, PASSWORD)
    events = audit_events(db, person_a.username)[before:]
    assert kind == "ok", (message, [(e.reason, e.details) for e in events], stack.log_tail(3000))
    person.wait_for_path("/account")
    assert [(e.result, e.reason) for e in events] == [("success", "OK")]
    assert events[0].details["flash"]["reflected"] is True

    record = flash_record(person)
    challenge = record["challenges"][-1]
    issued = challenge["flash"]["steps"]
    assert 4 <= len(issued) <= 6
    shown = painted_steps(record)
    # The issued colours, in order, each once, then back to normal (the layer hidden again).
    assert [s["colour"] for s in shown] == [s["colour"] for s in issued]
    assert record["painted"][-1]["shown"] is None
    for step, sent in zip(shown, issued, strict=True):
        # Never faster than the server asked, nor than three changes a second (times are animation-frame times).
        assert step["duration"] is not None
        assert step["duration"] >= max(MIN_STEP_MS, sent["duration_ms"]) - 0.01, (shown, issued)
        assert step["duration"] <= sent["duration_ms"] + 250, (shown, issued)  # and not stalled
        # The whole viewport, with the status text on its own solid panel.
        assert step["size"] == step["viewport"]
        assert step["status_background"] == "rgb(255, 255, 255)"
    # flash_start_ms: when the first colour was painted, on the frame clock.
    post = record["posts"][-1]
    assert post["path"].endswith("/api/login")
    # The page films LEAD_MS in the room's own light first (the frames the passive check judges).
    assert post["flash_start_ms"] is not None and LEAD_MS - 50 <= int(post["flash_start_ms"]) <= LEAD_MS + 250
    # The capture covers the whole sequence.
    capture = challenge["capture"]
    assert (capture["frames"] - 1) * 1000 / capture["fps"] >= sum(s["duration_ms"] for s in issued)
    # The notice came first, in the live status region, then the capture (with the colours).
    said = [entry["text"] or "" for entry in record["status"]]
    notice = next(i for i, text in enumerate(said) if text.startswith("The screen will show"))
    assert f"{len(issued)} colours" in said[notice] and "keep looking at the camera" in said[notice].lower()
    assert record["status"][notice]["live"] == "polite"
    assert any(text.startswith("Capturing") for text in said[notice + 1 :])
    relit = record["relight"]  # what the camera was lit with (relight.py)
    assert relit is not None and relit["colours"] == [s["colour"] for s in issued]
    person.screenshot(output_dir / "7_flash_login.png")


def test_8_a_camera_that_does_not_see_the_screen_is_refused(
    person_a: PersonA,
    stack: Stack,
    browser: Callable[..., Browser],
    db: Engine,
    output_dir,  # type: ignore[no-untyped-def]
) -> None:
    """A's own live video, blinking as asked, but not lit by the page's colours: a replayed or injected clip."""
    before = len(audit_events(db, person_a.username))
    person = browser("a_login", reflection=None)
    kind, message = person.login(stack.base_url, person_a.username, PASSWORD)
    events = audit_events(db, person_a.username)[before:]
    assert kind == "error", (message, [(e.reason, e.details) for e in events])
    assert message == FACE_ADVICE["LIVENESS_FLASH_NOT_REFLECTED"]  # told after the right password
    assert [(e.result, e.reason) for e in events] == [("failure", "LIVENESS_FLASH_NOT_REFLECTED")]
    assert events[0].details["flash"]["reflected"] is False
    assert events[0].details["flash"]["score"] < events[0].details["flash"]["threshold"]
    assert person.path().startswith("/login")
    assert person.driver.execute_script("return document.getElementById('flash-layer').hidden") is True
    assert "at most three changes a second" in person.text("#flash-hint")  # said before anyone starts
    person.screenshot(output_dir / "8_flash_not_reflected.png")


# A challenge whose flash steps were changed on the way to 50 ms each (a broken or tampered server answer).
FAST_FLASH = r"""
(function () {
  "use strict";
  var originalFetch = window.fetch.bind(window);
  window.fetch = function (input, init) {
    return originalFetch(input, init).then(function (response) {
      var url = typeof input === "string" ? input : input.url;
      if (!/\/challenge$/.test(url.split("?")[0])) { return response; }
      return response.text().then(function (text) {
        var body = JSON.parse(text);
        if (body.flash) {
          body.flash.steps.forEach(function (step) { step.duration_ms = 50; });
          window.__faceauthFastFlash = body.flash.steps.length;
        }
        return new Response(JSON.stringify(body), { status: response.status, headers: response.headers });
      });
    });
  };
})();
"""


def test_8b_the_page_never_flashes_faster_than_three_times_a_second(
    stack: Stack,
    browser: Callable[..., Browser],
    db: Engine,
) -> None:
    """WCAG 2.3.1 does not depend on the server: steps of 50 ms are painted for at least 334 ms each."""
    # The recorder is injected first, so it sees the server's answer and the page gets the 50 ms one. The account
    # has a password and a made-up template: the password step passes, the unlit capture is then refused.
    person = browser("a_login", reflection=None, scripts=(FLASH_RECORDER, FAST_FLASH))
    kind, _ = person.login(stack.base_url, account_with_a_face(db), PASSWORD)
    assert kind == "error"
    assert person.script_state("__faceauthFastFlash") >= 4
    record = flash_record(person)
    shown = painted_steps(record)
    assert [s["colour"] for s in shown] == [s["colour"] for s in record["challenges"][-1]["flash"]["steps"]]
    assert all(s["duration"] is not None and s["duration"] >= MIN_STEP_MS - 0.01 for s in shown), shown


@pytest.fixture
def flash_off(stack: Stack) -> Iterator[None]:
    """The operator's switch for photosensitive users: AUTH_FLASH=false with LIVENESS_CHECKS without ``flash`` (as
    docs/configuration.md says); both restored afterwards."""
    stack.stop_service("liveness")
    stack.start_service("liveness", {"LIVENESS_CHECKS": "sanity,passive,active"})
    try:
        stack.restart_auth_web(AUTH_FLASH="false")
        yield
    finally:
        stack.stop_service("liveness")
        stack.start_service("liveness")
        stack.restart_auth_web()


def test_8c_with_the_flash_off_the_page_is_as_before(
    person_a: PersonA,
    flash_off: None,
    stack: Stack,
    browser: Callable[..., Browser],
    db: Engine,
) -> None:
    """flash null: no notice, no colours, no flash_start_ms; a camera that does not see the screen signs in."""
    before = len(audit_events(db, person_a.username))
    person = browser("a_login", reflection=None, scripts=(FLASH_RECORDER,))
    person.open(stack.base_url, "/login")
    assert person.driver.find_elements(By.ID, "flash-hint") == []
    kind, message = person.login(stack.base_url, person_a.username, PASSWORD)
    events = audit_events(db, person_a.username)[before:]
    assert kind == "ok", (message, [(e.reason, e.details) for e in events])
    record = flash_record(person)
    assert record["challenges"][-1]["flash"] is None
    assert painted_steps(record) == []
    assert record["posts"][-1]["flash_start_ms"] is None
    said = [entry["text"] or "" for entry in record["status"]]
    assert not any("colour" in text for text in said), said
    assert [(e.result, e.reason) for e in events] == [("success", "OK")]
    assert events[0].details.get("flash") is None


@pytest.fixture
def a_is_admin(person_a: PersonA, db: Engine) -> Iterator[None]:
    with Session(db) as session:
        session.execute(update(User).where(User.id == person_a.user_id).values(role=ROLE_ADMIN))
        session.commit()
    try:
        yield
    finally:
        with Session(db) as session:
            session.execute(update(User).where(User.id == person_a.user_id).values(role=ROLE_USER))
            session.commit()


def test_9_admin_flash_calibration(
    person_a: PersonA,
    a_is_admin: None,
    stack: Stack,
    browser: Callable[..., Browser],
    db: Engine,
    output_dir,  # type: ignore[no-untyped-def]
) -> None:
    admin = browser("a_login", scripts=(FLASH_RECORDER,))
    kind, message = admin.login(stack.base_url, person_a.username, PASSWORD)
    assert kind == "ok", message
    admin.wait_for_path("/account")
    # Linked from the admin navigation.
    admin.driver.find_element(By.LINK_TEXT, "Flash calibration").click()
    admin.wait_for_path("/admin/flash")
    assert admin.text("main h1") == "Screen-flash calibration"
    assert "LIVENESS_FLASH_THRESHOLD" in admin.page_text()
    before = len(audit_events(db, person_a.username, "flash_calibration"))

    # With prefers-reduced-motion the notice is clearer; the flash itself still runs (it is the check).
    admin.driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]}
    )
    kind, message = admin.capture()
    assert kind == "ok", (message, admin.console_log())
    assert "reflected the colours" in message
    record = flash_record(admin)
    issued = record["challenges"][-1]["flash"]["steps"]
    assert [s["colour"] for s in painted_steps(record)] == [s["colour"] for s in issued]
    assert any((entry["text"] or "").startswith("Heads-up: the page around") for entry in record["status"])

    # The plot: one band per issued colour, in order, the expected colour per frame, three response lines.
    bands = admin.driver.find_elements(By.CSS_SELECTOR, "#flash-plot rect[data-colour]")
    assert [b.get_attribute("data-colour") for b in bands] == [s["colour"] for s in issued]
    expected = admin.driver.find_elements(By.CSS_SELECTOR, "#flash-plot rect:not([data-colour])")
    assert len(expected) >= len(issued)
    lines = admin.driver.find_elements(By.CSS_SELECTOR, "#flash-plot path.flash-plot__line")
    assert len(lines) == 3
    assert all(len(line.get_attribute("d").split("L")) >= 8 for line in lines)
    # The decision.
    assert admin.text("#flash-verdict") == "Reflected: the face followed the colours."
    assert admin.text('[data-fact="reflected"]') == "yes"
    scored = re.fullmatch(r"([\d.]+) \(threshold ([\d.]+)\)", admin.text('[data-fact="score"]'))
    assert scored, admin.text('[data-fact="score"]')
    assert float(scored.group(1)) >= float(scored.group(2)) > 0
    assert float(admin.text('[data-fact="face_gain"]')) > 0
    assert re.fullmatch(r"-?[\d.]+", admin.text('[data-fact="background_ratio"]'))
    assert re.fullmatch(r"\d+ ms", admin.text('[data-fact="lag"]'))
    assert admin.text('[data-fact="liveness"]').startswith("live")
    admin.screenshot(output_dir / "9_flash_calibration.png")
    events = audit_events(db, person_a.username, "flash_calibration")[before:]
    assert [(e.result, e.details["flash"]["reflected"]) for e in events] == [("success", True)]
