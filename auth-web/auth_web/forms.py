"""Server-rendered forms (Flask-WTF: each carries the CSRF token).

Labels and our messages are lazy (translated when the page is rendered); WTForms' own validator messages
("This field is required.") come from WTForms' catalogues in the request's language (Flask-WTF asks Flask-Babel).
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length


class RegisterForm(FlaskForm):
    username = StringField(
        _l("Username"), validators=[DataRequired(), Length(min=3, max=32)], render_kw={"autocomplete": "username"}
    )
    password = PasswordField(
        _l("Password"), validators=[DataRequired(), Length(max=256)], render_kw={"autocomplete": "new-password"}
    )
    confirm = PasswordField(
        _l("Repeat password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The two passwords differ."))],
        render_kw={"autocomplete": "new-password"},
    )


class ActionForm(FlaskForm):
    """A button that changes something (logout, delete, revoke): only the CSRF token."""


class SetPasswordForm(FlaskForm):
    """A new password (a recovery link's step)."""

    password = PasswordField(
        _l("New password"), validators=[DataRequired(), Length(max=256)], render_kw={"autocomplete": "new-password"}
    )
    confirm = PasswordField(
        _l("Repeat the new password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The two passwords differ."))],
        render_kw={"autocomplete": "new-password"},
    )


class ChangePasswordForm(SetPasswordForm):
    """The account page's password change: the current one too (besides the fresh ceremony)."""

    current = PasswordField(
        _l("Current password"),
        validators=[DataRequired(), Length(max=256)],
        render_kw={"autocomplete": "current-password"},
    )


class EmailForm(FlaskForm):
    """The account's e-mail address (empty removes it)."""

    email = StringField(
        _l("E-mail address"), validators=[Length(max=254)], render_kw={"autocomplete": "email", "type": "email"}
    )


class ForgotForm(FlaskForm):
    """Self-service recovery: whose account."""

    identifier = StringField(
        _l("Username or e-mail address"),
        validators=[DataRequired(), Length(max=254)],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )
