"""WCAG 2.2 contrast of app.css's colour pairs, in the light scheme and in prefers-color-scheme: dark.

The colours are read from the stylesheet itself (the custom properties of ``:root`` and of the dark scheme's
``:root``), so a changed colour that breaks a pair fails here. Text needs 4.5:1 (SC 1.4.3), the focus ring and the
borders of inputs and buttons 3:1 against what they sit on (SC 1.4.11, 2.4.13's contrast part).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

STYLESHEET = Path(__file__).resolve().parents[2] / "auth_web" / "static" / "css" / "app.css"

TEXT = 4.5
NON_TEXT = 3.0
# (foreground, background, minimum): every background the foreground is drawn on.
PAIRS = [
    *[("text", bg, TEXT) for bg in ("bg", "surface", "surface-hover", "control-bg", "badge-bg")],
    *[("muted", bg, TEXT) for bg in ("bg", "surface", "control-bg", "badge-bg")],  # hints, placeholders, badges
    *[("accent", bg, TEXT) for bg in ("bg", "surface")],  # links
    *[("accent-dark", bg, TEXT) for bg in ("bg", "surface")],  # links on hover
    ("on-accent", "accent", TEXT),  # the primary button
    ("on-accent", "accent-dark", TEXT),  # … hovered
    ("ok", "ok-bg", TEXT),
    ("ok", "surface", TEXT),  # the capture's "ok" status, verdicts
    ("warn", "warn-bg", TEXT),
    ("warn-text", "warn-bg", TEXT),
    ("error", "error-bg", TEXT),
    ("error", "surface", TEXT),  # field errors, the danger button
    ("error", "surface-hover", TEXT),
    ("info", "info-bg", TEXT),
    *[("focus", bg, NON_TEXT) for bg in ("bg", "surface", "control-bg")],
    *[("control-border", bg, NON_TEXT) for bg in ("bg", "surface", "control-bg")],
    ("error", "control-bg", NON_TEXT),  # an invalid input's border
]


def _declarations(block: str) -> dict[str, str]:
    return {name: value.strip().lower() for name, value in re.findall(r"--([\w-]+)\s*:\s*([^;]+);", block)}


def _block_after(css: str, start: int) -> str:
    """The text between the ``{`` at or after ``start`` and its matching ``}``."""
    opening = css.index("{", start)
    depth = 0
    for position in range(opening, len(css)):
        depth += {"{": 1, "}": -1}.get(css[position], 0)
        if depth == 0:
            return css[opening + 1 : position]
    raise ValueError("unbalanced braces in app.css")


def schemes(css: str) -> dict[str, dict[str, str]]:
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    light_root = re.search(r"(?m)^:root\s*\{", css)
    assert light_root, "app.css has no top-level :root block"
    light = _declarations(_block_after(css, light_root.start()))
    dark_media = re.search(r"@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)\s*\{", css)
    assert dark_media, "app.css has no prefers-color-scheme: dark block"
    media = _block_after(css, dark_media.start())
    dark_root = re.search(r":root\s*\{", media)
    assert dark_root, "the dark scheme sets no :root properties"
    dark = {**light, **_declarations(_block_after(media, dark_root.start()))}
    return {"light": light, "dark": dark}


def relative_luminance(colour: str) -> float:
    match = re.fullmatch(r"#([0-9a-f]{6}|[0-9a-f]{3})", colour)
    assert match, f"not a hex colour: {colour!r}"
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_contrast_ratio_matches_wcag_reference_values() -> None:
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    # The focus ring before issue 16: about 2:1 on white, too faint.
    assert contrast_ratio("#a5b4fc", "#fff") == pytest.approx(1.99, abs=0.01)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("foreground", "background", "minimum"), PAIRS)
def test_colour_pair_contrast(scheme: str, foreground: str, background: str, minimum: float) -> None:
    colours = schemes(STYLESHEET.read_text())[scheme]
    ratio = contrast_ratio(colours[foreground], colours[background])
    assert ratio >= minimum, (
        f"{scheme}: --{foreground} {colours[foreground]} on --{background} {colours[background]} is "
        f"{ratio:.2f}:1, needs {minimum}:1"
    )


def test_dark_scheme_changes_the_page_colours() -> None:
    light, dark = schemes(STYLESHEET.read_text()).values()
    for name in ("bg", "surface", "text", "muted", "accent", "focus", "control-border"):
        assert relative_luminance(light[name]) != relative_luminance(dark[name]), name
    # Dark means dark: the page and the cards are darker than their text.
    assert relative_luminance(dark["bg"]) < relative_luminance(dark["text"])


def test_focus_ring_and_controls_use_the_checked_properties() -> None:
    """The pairs above only protect the page if the rules draw with those properties."""
    css = re.sub(r"/\*.*?\*/", "", STYLESHEET.read_text(), flags=re.S)
    focus_rule = re.search(r"(?m)^:focus-visible\s*\{([^}]*)\}", css)
    assert focus_rule and "var(--focus)" in focus_rule.group(1)
    inputs = re.search(r"(?m)^input\[type=text\][^{]*\{([^}]*)\}", css)
    assert inputs and "var(--control-border)" in inputs.group(1) and "var(--control-bg)" in inputs.group(1)
    button = re.search(r"(?m)^\.button\s*\{([^}]*)\}", css)
    assert button and "var(--control-border)" in button.group(1)
    # No hard-coded colour outside the property blocks, except the camera stage, flash layer and flash plot,
    # which keep their own colours in both schemes on purpose.
    without_properties = re.sub(r"--[\w-]+\s*:\s*[^;]+;", "", css)
    for rule in re.findall(r"([^{}]+)\{([^{}]*)\}", without_properties):
        selector, body = rule
        if re.search(r"#[0-9a-fA-F]{3,6}\b|rgb\(", body):
            assert re.search(r"\.capture__|\.flash-|\.legend__|\.is-flashing", selector), (
                f"hard-coded colour in {selector.strip()!r}: use a custom property"
            )


def _rule_colour(css: str, selector: str, prop: str) -> str:
    body = re.search(rf"(?m)^{re.escape(selector)}\s*\{{([^}}]*)\}}", css)
    assert body, selector
    value = re.search(rf"(?:^|;|\s){prop}\s*:\s*(#[0-9a-fA-F]{{3,6}})\b", body.group(1))
    assert value, (selector, prop)
    return value.group(1).lower()


def test_camera_stage_text_contrast() -> None:
    """The camera stage keeps its own dark colours in both schemes (axe cannot judge text over the video)."""
    css = STYLESHEET.read_text()
    stage = _rule_colour(css, ".capture__stage", "background")
    for selector in (".capture__placeholder", ".capture--unavailable .capture__placeholder"):
        ratio = contrast_ratio(_rule_colour(css, selector, "color"), stage)
        assert ratio >= TEXT, (selector, ratio)
