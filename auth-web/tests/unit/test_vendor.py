"""The third-party files auth-web serves from static/vendor (face-api and tfjs's WASM binaries): each folder holds
its licence and a SHA256SUMS that lists every file it serves, with the hashes of the files as they are; the WASM
binaries are the ones the bundled tfjs asks for, of the tfjs version it bundles."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

VENDOR = Path(__file__).resolve().parents[2] / "auth_web" / "static" / "vendor"
FACE_API = VENDOR / "face-api@1.7.15"
TFJS_WASM = VENDOR / "tfjs-backend-wasm@4.22.0"
# Files of a vendor folder that are not served code or data, so not in its SHA256SUMS.
NOT_LISTED = {"LICENSE", "SHA256SUMS"}
WASM_MAGIC = b"\0asm"


def vendor_folders() -> list[Path]:
    return sorted(path for path in VENDOR.iterdir() if path.is_dir())


def sums(folder: Path) -> dict[str, str]:
    listed = {}
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    return listed


def test_the_vendor_folders_are_the_known_ones() -> None:
    assert vendor_folders() == [FACE_API, TFJS_WASM]


@pytest.mark.parametrize("folder", vendor_folders(), ids=lambda path: path.name)
def test_every_served_file_is_listed_with_its_hash(folder: Path) -> None:
    files = {
        str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file() and path.name not in NOT_LISTED
    }
    listed = sums(folder)
    assert set(listed) == files, "SHA256SUMS and the folder disagree"
    for name, digest in listed.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, f"{folder.name}/{name} changed"


@pytest.mark.parametrize(
    ("folder", "licence"),
    [(FACE_API, "MIT License"), (TFJS_WASM, "Apache License\n                           Version 2.0")],
    ids=["face-api", "tfjs-backend-wasm"],
)
def test_each_folder_carries_its_licence(folder: Path, licence: str) -> None:
    assert licence in (folder / "LICENSE").read_text()


def test_the_wasm_binaries_are_those_the_bundled_tfjs_loads() -> None:
    bundle = (FACE_API / "face-api.js").read_text()
    # The tfjs version face-api bundles ({"tfjs-backend-wasm": <name>, ...}, <name>="4.22.0") is the folder's.
    variable = re.search(r'"tfjs-backend-wasm":(\w+)', bundle)
    assert variable
    version = re.search(rf'\b{re.escape(variable.group(1))}="([0-9.]+)"', bundle)
    assert version and TFJS_WASM.name == f"tfjs-backend-wasm@{version.group(1)}"
    binaries = sorted(path.name for path in TFJS_WASM.glob("*.wasm"))
    # Without cross-origin isolation there is no SharedArrayBuffer, so tfjs never asks for the threaded build.
    assert binaries == ["tfjs-backend-wasm-simd.wasm", "tfjs-backend-wasm.wasm"]
    for name in binaries:
        assert f'"{name}"' in bundle, f"the bundle never loads {name}"
        assert (TFJS_WASM / name).read_bytes()[:4] == WASM_MAGIC
    assert '"tfjs-backend-wasm-threaded-simd.wasm"' in bundle
