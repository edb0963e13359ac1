"""The pages' script strings, from the same catalogue as the templates (i18n.py).

base.html renders ``catalogue()`` into ``<script type="application/json" id="i18n">`` (data, never executed: the
CSP's ``script-src 'self'`` stays as it is); static/js/page.js reads it once and gives every page script
``FaceauthI18n.t(key, params)``: ``{name}`` placeholders are filled from ``params`` (numbers in the page's
language). tests/unit/test_translations.py checks that every ``t("key")`` of static/js is here and every key here
is used.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

STRINGS = {
    # capture.js: the server's answers the page words itself
    "unavailable": _l("The service is temporarily unavailable. Please try again in a minute."),
    "network_failed": _l("Could not reach the server. Check your connection and try again."),
    "http.too_large": _l("The capture was too large to upload. Please try again."),
    "http.rate_limited": _l("Too many attempts. Please wait a little and try again."),
    "http.other": _l("Something went wrong (HTTP {status}). Please try again."),
    "reauth.redirect": _l("Confirm it's you first: taking you to sign in again…"),
    # capture.js: camera problems (title, message, what to do)
    "camera.insecure.title": _l("The camera needs a secure connection"),
    "camera.insecure.message": _l("The camera is only available on a secure (https://) page."),
    "camera.insecure.step": _l(
        "Open this site with https:// in the address bar, or ask your administrator to enable HTTPS."
    ),
    "camera.blocked.title": _l("Camera access is blocked"),
    "camera.blocked.message": _l("Camera access is blocked, so we cannot see your face."),
    "camera.blocked.step1": _l(
        "Click the camera or padlock icon at the left of the address bar (on a phone: the browser's site settings)."
    ),
    "camera.blocked.step2": _l('Set Camera to "Allow" for this site.'),
    "camera.blocked.step3": _l("Reload this page and start again."),
    "camera.missing.title": _l("No camera found"),
    "camera.missing.message": _l("No camera was found on this device."),
    "camera.missing.step": _l("Connect a webcam (or use a phone or laptop with a camera), then reload this page."),
    "camera.busy.title": _l("The camera is busy"),
    "camera.busy.message": _l("Your camera is in use by another application or could not be started."),
    "camera.busy.step": _l("Close other apps or tabs that use the camera (video calls), then try again."),
    "camera.failed.title": _l("The camera could not be started"),
    "camera.failed.message": _l("The camera could not be started."),
    "camera.failed.step": _l("Reload the page and try again."),
    "camera.waiting": _l("Waiting for the camera. Allow it if your browser asks."),
    "camera.how_to_fix": _l("How to fix it:"),
    # capture.js: the capture itself ({prompt}: the server's prompt, its first letter in lower case)
    "prompt.default": _l("Look at the camera"),
    "prompt.next": _l("Next: {prompt}"),
    "prompt.joiner": _l(", then "),
    "announce": _l("When your face is in the oval, the capture starts by itself: {steps}."),
    "flash.notice": _l(
        "The screen will show {count} colours for about {seconds} seconds while the pictures are taken. "
        "Keep looking at the camera."
    ),
    "flash.notice_clear": _l(
        "Heads-up: the page around the camera picture will change colour {count} times, slowly (at most 3 changes "
        "a second), for about {seconds} seconds. It checks that a real person is in front of the camera. Keep "
        "looking at the camera."
    ),
    "flash.keep_visible": _l("Keep this page visible during the capture, then try again."),
    "capture.capturing": _l("Capturing… {prompt}."),
    "capture.prepare_failed": _l("The capture could not be prepared. Reload the page and try again."),
    "capture.not_placed": _l("We could not see your face in the oval. Follow the hint above, then try again."),
    "capture.checking": _l("Checking…"),
    "capture.starting": _l("Starting the camera…"),
    "capture.place_face": _l("Place your face in the oval."),
    "capture.done": _l("Done."),
    # guidance.js: the live framing hints
    "guide.loading": _l("Getting the face guide ready…"),
    "guide.none": _l("No face found. Look straight at the camera."),
    "guide.many": _l("Only one person, please: make sure nobody else is in the picture."),
    "guide.dark": _l("More light, please: face a window or a lamp."),
    "guide.far": _l("Move closer to the camera."),
    "guide.near": _l("Move back a little."),
    "guide.offcentre": _l("Centre your face in the oval."),
    "guide.placed": _l("Good, hold still."),
    "guide.unavailable": _l("Look at the camera, your face inside the oval."),
    # login.js
    "login.enter_username": _l("Enter your username."),
    "login.enter_password": _l("Enter your password."),
    "login.signed_in": _l("Signed in."),
    "passkey.unsupported_here": _l("This browser cannot use passkeys here."),
    "passkey.follow_prompt_use": _l("Follow your browser's prompt to use your passkey…"),
    # passkeys.js
    "passkey.cannot_create": _l(
        "This browser cannot create passkeys here (it needs a secure connection and passkey support)."
    ),
    "passkey.follow_prompt_create": _l("Follow your browser's prompt to create the passkey…"),
    # webauthn.js: what went wrong with the authenticator
    "webauthn.not_allowed": _l("The passkey request was cancelled or timed out. Please try again."),
    "webauthn.invalid_state": _l("This authenticator already holds a passkey for this account."),
    "webauthn.security": _l("Passkeys need this site to be opened over HTTPS at its own address."),
    "webauthn.not_supported": _l("This browser or authenticator does not support passkeys."),
    "webauthn.failed": _l("The passkey could not be used. Please try again."),
    # admin.js
    "admin.confirm": _l("Are you sure?"),
    # flash-calibration.js
    "calibration.screen": _l("screen"),
    "calibration.expected": _l("expected"),
    "calibration.seconds": _l("{seconds} s"),
    "calibration.milliseconds": _l("{ms} ms"),
    "calibration.summary": _l("{steps} colours over {ms} ms; {measured} of {frames} frames measured."),
    "calibration.plot_title": _l("Screen colours and the skin's colour response. {summary}"),
    "calibration.reflected": _l("Reflected: the face followed the colours."),
    "calibration.not_reflected": _l("Not reflected: the face did not follow the colours."),
    "calibration.not_run": _l("The flash check did not run on this capture."),
    "calibration.yes": _l("yes"),
    "calibration.no": _l("no"),
    "calibration.none": _l("none"),
    "calibration.live": _l("live"),
    "calibration.not_live": _l("not live"),
    "calibration.score": _l("{score} (threshold {threshold})"),
    "calibration.failed": _l("The calibration check failed. Please try again."),
    "calibration.done_reflected": _l("Done: the face reflected the colours. The plot and the numbers are below."),
    "calibration.done_not_reflected": _l(
        "Done: the face did not reflect the colours. The plot and the numbers are below."
    ),
}


def catalogue() -> dict[str, str]:
    """Every script string in this request's language."""
    return {key: str(text) for key, text in STRINGS.items()}
