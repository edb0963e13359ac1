"""Jinja filters every page uses the same way (registered by ``create_app``).

``local_time``: a moment as ``<time>``: the machine-readable UTC instant in ``datetime``, the UTC text as the
fallback and in the tooltip; static/js/page.js rewrites the text into the browser's time zone and language.
"""

from __future__ import annotations

import datetime as dt

from flask import Flask
from markupsafe import Markup, escape

# precision -> (the fallback text's format, the tooltip's format)
_FORMATS = {
    "date": ("%Y-%m-%d", "%Y-%m-%d %H:%M UTC"),
    "minute": ("%Y-%m-%d %H:%M UTC", "%Y-%m-%d %H:%M UTC"),
    "second": ("%Y-%m-%d %H:%M:%S UTC", "%Y-%m-%d %H:%M:%S UTC"),
}


def local_time(moment: dt.datetime | None, precision: str = "minute", empty: str = "—") -> Markup:
    """``<time datetime="2026-12-02T02:17:36Z" data-precision="minute" title="2026-12-02 02:17 UTC">…</time>``;
    ``empty`` (escaped) when there is no moment. A naive datetime is taken as UTC (the database's columns are
    timezone-aware; Redis-kept session times are UTC)."""
    if moment is None:
        return escape(empty)
    if precision not in _FORMATS:
        raise ValueError(f"unknown precision {precision!r} (one of {', '.join(_FORMATS)})")
    utc = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    text_format, title_format = _FORMATS[precision]
    instant = utc.isoformat(timespec="seconds").replace("+00:00", "Z")
    return Markup('<time datetime="{}" data-precision="{}" title="{}">{}</time>').format(
        instant, precision, utc.strftime(title_format), utc.strftime(text_format)
    )


def init_app(app: Flask) -> None:
    app.add_template_filter(local_time, "local_time")
