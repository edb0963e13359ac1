"""Headless Chromium (Debian's chromium + chromedriver, no downloads) and what a person does with the pages.

The camera is Chromium's fake capture device fed from a Y4M file (tests/e2e/media.py). Each driver gets a fresh
profile folder; the camera permission is granted by ``--use-fake-ui-for-media-stream`` or, for the
permission-denied scenario, left out (headless Chromium then refuses the prompt) and explicitly denied.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("FACEAUTH_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FACEAUTH_E2E_CHROMEDRIVER", "/usr/bin/chromedriver")
# Placing the face, the capture (~1.4 s of frames) plus liveness and recognition on a busy 2-core machine.
RESULT_TIMEOUT = 120.0
PAGE_TIMEOUT = 30.0
WINDOW = (1280, 1000)


def chromium_available() -> str | None:
    """None when Chromium and its driver are installed, else what is missing."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not (shutil.which(path) or Path(path).is_file())]
    return ", ".join(missing) + " not found (apt-get install chromium chromium-driver)" if missing else None


# The capture's verdict, read in one go: after a success the page has left for the next one and the verdict it
# showed is kept in sessionStorage; before that it is the status line's class and text.
VERDICT_SCRIPT = """
const [page] = arguments;
if (location.href !== page) {
  const kept = sessionStorage.getItem('faceauth.verdict');
  return kept === null ? null : ['ok', kept.trim()];
}
const status = document.getElementById('capture-status');
if (!status) return null;
for (const kind of ['ok', 'error']) {
  if (status.classList.contains('capture__status--' + kind)) return [kind, status.innerText.trim()];
}
return null;
"""


class Browser:
    """One Chromium with its own profile and camera file; ``quit()`` removes the profile."""

    def __init__(
        self,
        camera: Path | None,
        *,
        grant_camera: bool = True,
        scripts: Sequence[str] = (),
        language: str | None = None,
    ) -> None:
        """``scripts`` run in every page before the page's own (the camera relighting, the flash recorder);
        ``language``: the browser's languages ("de-DE,de"), its UI and Accept-Language (default: Chromium's)."""
        self.profile = Path(tempfile.mkdtemp(prefix="faceauth-e2e-chromium-"))
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        arguments = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--use-fake-device-for-media-stream",
            "--ignore-certificate-errors",  # the local run's self-signed certificate
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            f"--user-data-dir={self.profile}",
        ]
        if camera is not None:
            arguments.append(f"--use-file-for-fake-video-capture={camera}")
        prefs: dict[str, Any] = {}
        if grant_camera:
            arguments.append("--use-fake-ui-for-media-stream")  # answers the camera prompt with "Allow"
        else:
            # What a person who clicked "Block" has: the site's camera setting is "Block", and any prompt is denied.
            arguments.append("--deny-permission-prompts")
            prefs["profile.default_content_setting_values.media_stream_camera"] = 2
        if language:
            arguments.append(f"--lang={language.split(',')[0]}")
            prefs["intl.accept_languages"] = language
        if prefs:
            options.add_experimental_option("prefs", prefs)
        for argument in arguments:
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        try:
            self.driver: WebDriver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        except WebDriverException:
            shutil.rmtree(self.profile, ignore_errors=True)
            raise
        self.driver.set_page_load_timeout(PAGE_TIMEOUT)
        self._console: list[dict[str, Any]] = []
        try:
            for source in scripts:
                self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": source})
        except WebDriverException:
            self.quit()
            raise

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    # -- reading the page --------------------------------------------------------------------------

    def text(self, css: str) -> str:
        elements = self.driver.find_elements(By.CSS_SELECTOR, css)
        return elements[0].text.strip() if elements else ""

    def page_text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def path(self) -> str:
        url = self.driver.current_url
        return "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url

    def wait(self, condition: Callable[[WebDriver], Any], timeout: float = PAGE_TIMEOUT, message: str = "") -> Any:
        # A page that navigates while a condition reads it (a success leaves for the next page at once) leaves the
        # condition holding a stale element: that is "not yet", the next poll reads the new page.
        return WebDriverWait(
            self.driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
        ).until(condition, message)

    def _console_entries(self) -> list[dict[str, Any]]:
        # Chromium hands each entry over once; keep them all.
        with contextlib.suppress(WebDriverException):
            self._console.extend(self.driver.get_log("browser"))
        return self._console

    def console_log(self) -> str:
        return "\n".join(f"{e.get('level')}: {e.get('message')}" for e in self._console_entries()[-20:])

    def page_errors(self) -> list[str]:
        """Script errors and Content-Security-Policy violations seen so far (an HTTP 4xx/5xx answer to a fetch
        is logged too, and is not an error of the page)."""
        return [
            str(entry.get("message"))
            for entry in self._console_entries()
            if entry.get("level") == "SEVERE" and "Failed to load resource" not in str(entry.get("message"))
        ]

    def overlay_painted(self) -> bool:
        """Whether anything (the face oval, the dimming around it) is drawn on the capture's overlay canvas."""
        return bool(
            self.driver.execute_script(
                "var c = document.getElementById('capture-overlay');"
                "if (!c || !c.width || !c.height) { return false; }"
                "var px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                "for (var i = 3; i < px.length; i += 4) { if (px[i]) { return true; } }"
                "return false;"
            )
        )

    def script_state(self, name: str) -> Any:
        """A value an injected script keeps on ``window`` (e.g. ``__faceauthFlashRecord``), or None."""
        return self.driver.execute_script(f"return window[{name!r}] || null;")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page; also asserts that the page had no script error or CSP violation."""
        assert not self.page_errors(), f"errors in the browser console on {self.path()}: {self.page_errors()}"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Tall enough for the whole page, so that the picture shows what a person would scroll to.
        height = self.driver.execute_script(
            "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"
        )
        self.driver.set_window_size(WINDOW[0], max(WINDOW[1], min(int(height) + 160, 2400)))
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(*WINDOW)
        return path

    def session_cookie(self, name: str = "faceauth_session") -> dict[str, Any] | None:
        return self.driver.get_cookie(name)

    # -- what a person does ------------------------------------------------------------------------

    def open(self, base_url: str, path: str) -> None:
        self.driver.get(base_url + path)

    def fill(self, css: str, value: str) -> None:
        field = self.driver.find_element(By.CSS_SELECTOR, css)
        field.clear()
        field.send_keys(value)

    def register(self, base_url: str, username: str, password: str) -> None:
        self.open(base_url, "/register")
        self.fill("#username", username)
        self.fill("#password", password)
        self.fill("#confirm", password)
        self.driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        self.wait(lambda d: "/register" not in d.current_url, message="registration did not leave /register")

    def capture(self, timeout: float = RESULT_TIMEOUT) -> tuple[str, str]:
        """Press the capture form's button and wait for its verdict: ("ok" | "error", the status text)."""
        started = time.monotonic()
        page = self.driver.current_url
        self.driver.execute_script("sessionStorage.removeItem('faceauth.verdict');")
        self.driver.find_element(By.ID, "start-button").click()

        def verdict(driver: WebDriver) -> tuple[str, str] | None:
            # One script reads everything, so no element is held across a navigation; a script that meets a page
            # being replaced fails in Chromium's own words, and that is "not yet" too.
            try:
                seen = driver.execute_script(VERDICT_SCRIPT, page)
            except WebDriverException:
                return None
            return tuple(seen) if seen else None

        try:
            return self.wait(verdict, timeout)
        except Exception as error:
            raise AssertionError(
                f"no verdict on {self.path()} after {time.monotonic() - started:.0f}s "
                f"(status: {self.text('#capture-status')!r})\n{self.console_log()}"
            ) from error

    def enroll(self) -> tuple[str, str]:
        return self.capture()

    def login(self, base_url: str, username: str, password: str) -> tuple[str, str]:
        self.open(base_url, "/login")
        self.fill("#username", username)
        self.fill("#password", password)
        return self.capture()

    def wait_for_path(self, path: str, timeout: float = PAGE_TIMEOUT) -> None:
        self.wait(lambda d: self.path().split("?")[0] == path, timeout, f"never reached {path} (at {self.path()})")

    def sign_out(self) -> None:
        self.driver.find_element(By.CSS_SELECTOR, "header form[action$='/logout'] button").click()
        self.wait_for_path("/login")
