"""Server-rendered forms (Flask-WTF: each carries the CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length


class RegisterForm(FlaskForm):
    username = StringField(
        "Username", validators=[DataRequired(), Length(min=3, max=32)], render_kw={"autocomplete": "username"}
    )
    password = PasswordField(
        "Password", validators=[DataRequired(), Length(max=256)], render_kw={"autocomplete": "new-password"}
    )
    confirm = PasswordField(
        "Repeat password",
        validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")],
        render_kw={"autocomplete": "new-password"},
    )


class ActionForm(FlaskForm):
    """A button that changes something (logout, delete, revoke): only the CSRF token."""


class SetPasswordForm(FlaskForm):
    """A new password (a recovery link's step)."""

    password = PasswordField(
        "New password", validators=[DataRequired(), Length(max=256)], render_kw={"autocomplete": "new-password"}
    )
    confirm = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")],
        render_kw={"autocomplete": "new-password"},
    )


class ChangePasswordForm(SetPasswordForm):
    """The account page's password change: the current one too (besides the fresh ceremony)."""

    current = PasswordField(
        "Current password", validators=[DataRequired(), Length(max=256)], render_kw={"autocomplete": "current-password"}
    )


class EmailForm(FlaskForm):
    """The account's e-mail address (empty removes it)."""

    email = StringField(
        "E-mail address", validators=[Length(max=254)], render_kw={"autocomplete": "email", "type": "email"}
    )


class ForgotForm(FlaskForm):
    """Self-service recovery: whose account."""

    identifier = StringField(
        "Username or e-mail address",
        validators=[DataRequired(), Length(max=254)],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )
