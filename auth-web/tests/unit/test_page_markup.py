"""The shared page markup: the ``local_time`` filter and the ``_forms.html`` field macro (issue 16, item 5)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from wtforms import Form, StringField
from wtforms.validators import DataRequired, Length

from auth_web.templating import local_time

TEMPLATES = Path(__file__).resolve().parents[2] / "auth_web" / "templates"


def test_local_time_of_an_aware_moment_is_utc_with_the_utc_text_and_tooltip() -> None:
    berlin = dt.timezone(dt.timedelta(hours=1))
    markup = local_time(dt.datetime(2026, 12, 2, 3, 17, 36, 999, tzinfo=berlin))
    assert isinstance(markup, Markup)
    assert markup == (
        '<time datetime="2026-12-02T02:17:36Z" data-precision="minute" title="2026-12-02 02:17 UTC">'
        "2026-12-02 02:17 UTC</time>"
    )


def test_local_time_takes_a_naive_moment_as_utc() -> None:
    markup = local_time(dt.datetime(2026, 1, 5, 23, 59, 1), "second")
    assert 'datetime="2026-01-05T23:59:01Z"' in markup
    assert ">2026-01-05 23:59:01 UTC</time>" in markup
    assert 'data-precision="second"' in markup


def test_local_time_date_precision_keeps_the_full_moment_in_the_tooltip() -> None:
    markup = local_time(dt.datetime(2026, 1, 5, 23, 59, tzinfo=dt.UTC), "date")
    assert ">2026-01-05</time>" in markup
    assert 'title="2026-01-05 23:59 UTC"' in markup


def test_local_time_without_a_moment_is_the_escaped_placeholder() -> None:
    assert local_time(None) == "—"
    assert local_time(None, empty="<never>") == "&lt;never&gt;"


def test_local_time_refuses_an_unknown_precision() -> None:
    with pytest.raises(ValueError, match="unknown precision"):
        local_time(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "hour")


class _Form(Form):
    username = StringField("Username", validators=[DataRequired(), Length(min=3)])


def _render(form: Form, call: str) -> str:
    environment = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, autoescape=True)
    template = environment.from_string('{% from "_forms.html" import field %}' + call)
    return template.render(form=form)


def _input(html: str) -> str:
    match = re.search(r"<input [^>]*>", html)
    assert match, html
    return match.group(0)


def test_field_with_errors_is_invalid_and_described_by_its_error_list_and_hint() -> None:
    form = _Form(data={"username": "ab"})
    assert not form.validate()
    html = _render(form, '{{ field(form.username, "3 or more characters.", maxlength=32) }}')
    tag = _input(html)
    assert 'aria-invalid="true"' in tag
    described = re.search(r'aria-describedby="([^"]+)"', tag)
    assert described and described.group(1).split() == ["username-errors", "username-help"]
    # Both ids exist, the error list holds the validator's message, extra arguments reach the input.
    assert '<ul class="errors" id="username-errors"><li>Field must be at least 3 characters long.</li>' in html
    assert '<p class="hint" id="username-help">3 or more characters.</p>' in html
    assert 'maxlength="32"' in tag
    assert 'class="field field--error"' in html
    assert '<label for="username">Username</label>' in html


def test_field_without_errors_is_not_invalid_and_points_at_its_hint_only() -> None:
    form = _Form(data={"username": "alice"})
    assert form.validate()
    tag = _input(_render(form, '{{ field(form.username, "3 or more characters.") }}'))
    assert "aria-invalid" not in tag
    assert 'aria-describedby="username-help"' in tag


def test_field_without_hint_or_errors_has_no_dangling_reference() -> None:
    tag = _input(_render(_Form(data={"username": "alice"}), "{{ field(form.username, required=True) }}"))
    assert "aria-describedby" not in tag and "aria-invalid" not in tag
    assert "required" in tag
