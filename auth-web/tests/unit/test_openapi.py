"""/api/openapi.json: the reviewed description lists exactly the app's JSON routes, and its references resolve."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from auth_web.blueprints.api import openapi_document

IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture(scope="module")
def app() -> Flask:
    # Nothing here talks to Redis or Postgres: the clients connect lazily, and only the routes are read.
    from auth_web import create_app
    from auth_web.config import Settings

    return create_app(Settings(redis_url="redis://127.0.0.1:1/0", database_url="sqlite://"))


def _json_routes(app: Flask) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") or rule.endpoint.startswith("health."):
            routes.setdefault(rule.rule, set()).update((rule.methods or set()) - IGNORED_METHODS)
    return routes


def _spec() -> dict[str, Any]:
    return json.loads(openapi_document())


def test_the_description_lists_exactly_the_apps_json_routes(app: Flask) -> None:
    described = {path: {method.upper() for method in item} for path, item in _spec()["paths"].items()}
    assert described == _json_routes(app)


def test_it_is_served_at_api_openapi_json(app: Flask) -> None:
    response = app.test_client().get("/api/openapi.json")  # no session: works even with Redis down
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json()["openapi"].startswith("3.1")


def test_every_reference_resolves_and_every_operation_documents_its_errors() -> None:
    spec = _spec()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                target: Any = spec
                for part in node["$ref"].removeprefix("#/").split("/"):
                    target = target[part]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            assert operation["operationId"] and operation["responses"], (path, method)
            if method == "post":
                # Every POST can fail on its input, its limits or a dependency: those answers are described.
                assert {"400", "429", "503"} <= set(operation["responses"]), (path, method)
                for status, response in operation["responses"].items():
                    if status.startswith(("4", "5")):
                        schema = response["content"]["application/json"]["schema"]
                        assert schema == {"$ref": "#/components/schemas/Error"}, (path, status)


def test_the_capture_upload_is_multipart_with_frames_and_frame_times() -> None:
    spec = _spec()
    for path in ("/api/login", "/api/enroll"):
        body = spec["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
        assert body["schema"] == {"$ref": "#/components/schemas/CaptureUpload"}
    upload = spec["components"]["schemas"]["CaptureUpload"]["properties"]
    assert {"nonce", "password", "frame_times_ms", "flash_start_ms", "frames"} == set(upload)
    assert upload["frames"]["type"] == "array" and upload["frames"]["maxItems"] == 24


def test_the_described_flash_follows_the_settings_limits() -> None:
    """The page's contract: each step a palette colour for at least 334 ms (WCAG 2.3.1), 4–6 steps, or null."""
    from auth_web.flash import MAX_STEP_MS, MIN_STEP_MS, PALETTE

    schemas = _spec()["components"]["schemas"]
    step = schemas["FlashStep"]["properties"]
    assert (step["duration_ms"]["minimum"], step["duration_ms"]["maximum"]) == (MIN_STEP_MS, MAX_STEP_MS)
    assert all(f"#{rgb:06x}" in step["colour"]["description"] for rgb in PALETTE)
    steps = schemas["Flash"]["properties"]["steps"]
    assert (steps["minItems"], steps["maxItems"]) == (4, 6)
    assert "flash" in schemas["Challenge"]["required"]
    assert {"type": "null"} in schemas["Challenge"]["properties"]["flash"]["oneOf"]


def test_the_described_actions_are_the_proto_actions() -> None:
    """The JSON API's action names are derived from the liveness contract; the description may not drift."""
    from auth_web import actions

    assert tuple(_spec()["components"]["schemas"]["Action"]["enum"]) == actions.NAMES


def test_the_described_liveness_reasons_are_the_proto_reasons_as_audit_codes() -> None:
    """The calibration API's `reason` values are decision.py's codes for every proto LivenessReason."""
    from auth_web.decision import liveness_reason_code
    from faceauth.liveness.v1 import liveness_pb2

    described = _spec()["components"]["schemas"]["LivenessReason"]["enum"]
    assert described == [liveness_reason_code(value) for value in liveness_pb2.LivenessReason.values()]
    assert {"LIVENESS_FLASH_NOT_REFLECTED", "LIVENESS_PLANAR_MOTION", "LIVENESS_SYNTHETIC_MOTION"} <= set(described)


def test_the_calibration_api_is_admin_only_and_described() -> None:
    spec = _spec()
    for path in ("/api/admin/flash/challenge", "/api/admin/flash/check"):
        assert {"401", "403"} <= set(spec["paths"][path]["post"]["responses"]), path
    body = spec["paths"]["/api/admin/flash/check"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"] == {"$ref": "#/components/schemas/CaptureUpload"}
    result = spec["components"]["schemas"]["FlashCalibration"]
    assert set(result["required"]) == {
        "ok",
        "live",
        "reason",
        "failed_checks",
        "flash",
        "planarity_residual",
        "frames",
        "steps",
        "flash_start_ms",
    }
