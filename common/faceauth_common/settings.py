"""Typed readers for environment variables.

Every service builds one frozen settings object from these at start; a malformed value stops
the program with a message naming the variable instead of failing later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


class SettingsError(ValueError):
    """A configuration variable has a value the service cannot use."""


def _raw(env: Mapping[str, str] | None, name: str) -> str | None:
    value = (os.environ if env is None else env).get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str, env: Mapping[str, str] | None = None) -> str:
    value = _raw(env, name)
    return default if value is None else value


def env_int(
    name: str,
    default: int,
    env: Mapping[str, str] | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = _raw(env, name)
    if value is None:
        result = default
    else:
        try:
            result = int(value)
        except ValueError:
            raise SettingsError(f"{name} must be an integer, got {value!r}") from None
    _check_range(name, result, minimum, maximum)
    return result


def env_float(
    name: str,
    default: float,
    env: Mapping[str, str] | None = None,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    value = _raw(env, name)
    if value is None:
        result = default
    else:
        try:
            result = float(value)
        except ValueError:
            raise SettingsError(f"{name} must be a number, got {value!r}") from None
        if result != result:  # NaN
            raise SettingsError(f"{name} must be a number, got {value!r}")
    _check_range(name, result, minimum, maximum)
    return result


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool, env: Mapping[str, str] | None = None) -> bool:
    value = _raw(env, name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingsError(f"{name} must be one of {sorted(_TRUE | _FALSE)}, got {value!r}")


def env_list(name: str, default: tuple[str, ...], env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """A comma-separated list; empty items are dropped."""
    value = _raw(env, name)
    if value is None:
        return default
    return tuple(item.strip() for item in value.split(",") if item.strip())


def env_choice(name: str, default: str, choices: tuple[str, ...], env: Mapping[str, str] | None = None) -> str:
    value = env_str(name, default, env)
    if value not in choices:
        raise SettingsError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def _check_range(name: str, value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be <= {maximum}, got {value}")
