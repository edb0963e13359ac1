"""The checked-in generated proto code must equal a fresh generation (nobody edits it by hand)."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", "scripts/gen_protos.sh", str(tmp_path)],
        cwd=REPO_ROOT,
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    checked_in = sorted(
        p.relative_to(REPO_ROOT / "common")
        for p in (REPO_ROOT / "common" / "faceauth").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert fresh == checked_in, "generated file set differs: run `make protos` and commit"
    stale = [str(rel) for rel in fresh if not filecmp.cmp(tmp_path / rel, REPO_ROOT / "common" / rel, shallow=False)]
    assert not stale, f"stale generated code: {stale}; run `make protos` and commit"


def test_protos_use_versioned_packages() -> None:
    from faceauth.liveness.v1 import liveness_pb2
    from faceauth.recognition.v1 import recognition_pb2

    assert liveness_pb2.DESCRIPTOR.package == "faceauth.liveness.v1"
    assert recognition_pb2.DESCRIPTOR.package == "faceauth.recognition.v1"


def test_both_services_use_the_one_shared_bounding_box() -> None:
    from faceauth.common.v1 import geometry_pb2
    from faceauth.liveness.v1 import liveness_pb2
    from faceauth.recognition.v1 import recognition_pb2

    assert geometry_pb2.DESCRIPTOR.package == "faceauth.common.v1"
    shared = geometry_pb2.BoundingBox.DESCRIPTOR
    assert liveness_pb2.FrameDiagnostics.DESCRIPTOR.fields_by_name["box"].message_type is shared
    assert recognition_pb2.FaceObservation.DESCRIPTOR.fields_by_name["box"].message_type is shared
    assert "BoundingBox" not in liveness_pb2.DESCRIPTOR.message_types_by_name
    assert "BoundingBox" not in recognition_pb2.DESCRIPTOR.message_types_by_name
