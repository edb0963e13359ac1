from __future__ import annotations

import json
import logging

import pytest

from faceauth_common.logs import JsonFormatter, request_id_var
from faceauth_common.settings import SettingsError, env_bool, env_choice, env_float, env_int, env_list


def test_typed_readers_use_defaults_and_parse_values() -> None:
    env = {"N": "7", "F": "0.5", "B": "yes", "L": "a, b,,c", "EMPTY": "  "}
    assert env_int("N", 1, env) == 7
    assert env_int("EMPTY", 3, env) == 3
    assert env_float("F", 1.0, env) == 0.5
    assert env_bool("B", False, env) is True
    assert env_list("L", (), env) == ("a", "b", "c")
    assert env_choice("MISSING", "x", ("x", "y"), env) == "x"


@pytest.mark.parametrize(
    "call",
    [
        lambda: env_int("N", 1, {"N": "seven"}),
        lambda: env_int("N", 1, {"N": "0"}, minimum=1),
        lambda: env_float("F", 1.0, {"F": "nan"}),
        lambda: env_bool("B", False, {"B": "maybe"}),
        lambda: env_choice("C", "x", ("x",), {"C": "z"}),
    ],
)
def test_malformed_values_name_the_variable(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SettingsError, match=r"^[NFBC] must"):
        call()


def test_json_log_line_carries_service_request_id_and_fields() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "frames_decoded", None, None)
    record.fields = {"count": 8}
    token = request_id_var.set("req-123")
    try:
        line = json.loads(JsonFormatter("recognition-service").format(record))
    finally:
        request_id_var.reset(token)
    assert line["service"] == "recognition-service"
    assert line["request_id"] == "req-123"
    assert line["event"] == "frames_decoded"
    assert line["count"] == 8
    assert line["level"] == "info"


def test_event_fields_cannot_overwrite_the_envelope() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "dependency_failed", None, None)
    record.fields = {"service": "recognition", "event": "other", "code": "UNAVAILABLE"}
    line = json.loads(JsonFormatter("auth-web").format(record))
    assert line["service"] == "auth-web"
    assert line["event"] == "dependency_failed"
    assert line["code"] == "UNAVAILABLE"
