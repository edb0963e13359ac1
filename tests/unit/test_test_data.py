"""The suite runs on the repository alone: no test reads the team's data set beside the repository, and every file
in tests/data is listed in its README with a licence that allows redistribution."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO_ROOT, TEST_DATA

# Where tests and their fixtures live (pyproject's testpaths) and the root conftest; bench/ may read the data set.
TEST_ROOTS = ("tests", "common/tests", "recognition-service/tests", "liveness-service/tests", "auth-web/tests")
# A path into the data set beside the repository, or its old override (this file, which names them, is not scanned).
OUTSIDE = re.compile(r"""shared/data|\.\./shared|FACEAUTH_SHARED_DATA|["']shared["']""")
REDISTRIBUTABLE = {"MIT", "Apache-2.0"}
SOURCE_NOTES = {"LICENSE", "MANIFEST.txt", "README.md"}
BUDGET_BYTES = 25 * 1024 * 1024
SCANNED_SUFFIXES = {".py", ".js", ".json", ".cfg", ".ini", ".toml", ".sh", ".txt", ""}


def _test_sources() -> list[Path]:
    found = [REPO_ROOT / "conftest.py"]
    for root in TEST_ROOTS:
        for path in sorted((REPO_ROOT / root).rglob("*")):
            skipped = TEST_DATA in path.parents or "__pycache__" in path.parts or path == Path(__file__).resolve()
            if path.is_file() and not skipped and path.suffix in SCANNED_SUFFIXES:
                found.append(path)
    return found


def _readme_entries() -> dict[str, tuple[str, set[str]]]:
    """folder -> (licence, files) from the first table of tests/data/README.md."""
    entries: dict[str, tuple[str, set[str]]] = {}
    for line in (TEST_DATA / "README.md").read_text().splitlines():
        if line.startswith("## "):
            break
        if line.startswith("| `"):
            folder, licence, _origin, files, _used_by = (cell.strip() for cell in line.strip().strip("|").split("|"))
            entries[folder.strip("`")] = (licence, set(re.findall(r"`([^`]+)`", files)))
    return entries


def test_no_test_reads_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for path in _test_sources()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not offenders, "tests must use tests/data only:\n" + "\n".join(offenders)


def test_the_scan_sees_the_test_modules_and_would_catch_a_path_outside() -> None:
    sources = {path.relative_to(REPO_ROOT).as_posix() for path in _test_sources()}
    assert {"conftest.py", "liveness-service/tests/conftest.py", "tests/e2e/media.py"} <= sources
    examples = ['Path("../shared/data")', 'REPO_ROOT.parent / "shared" / "data"', "os.environ['FACEAUTH_SHARED_DATA']"]
    for line in examples:
        assert OUTSIDE.search(line), line


def test_every_file_in_tests_data_is_listed_with_a_redistributable_licence() -> None:
    entries = _readme_entries()
    assert entries, "tests/data/README.md has no table of sources"
    unlisted = []
    for path in sorted(p for p in TEST_DATA.rglob("*") if p.is_file()):
        relative = path.relative_to(TEST_DATA).as_posix()
        if relative == "README.md":
            continue
        folder = next((f for f in entries if relative.startswith(f + "/")), None)
        if folder is None:
            unlisted.append(relative)
            continue
        inside = relative.removeprefix(folder + "/")
        if inside not in SOURCE_NOTES and inside not in entries[folder][1]:
            unlisted.append(relative)
    assert not unlisted, f"not listed in tests/data/README.md: {unlisted}"
    for folder, (licence, files) in entries.items():
        assert licence in REDISTRIBUTABLE, (folder, licence)
        assert (TEST_DATA / folder / "LICENSE").is_file(), f"{folder}: its LICENSE must be beside it"
        assert any((TEST_DATA / folder / note).is_file() for note in ("MANIFEST.txt", "README.md")), folder
        missing = [name for name in files if not (TEST_DATA / folder / name).is_file()]
        assert not missing, f"{folder}: listed but not there: {missing}"


def test_no_attack_images_without_a_licence_and_the_subset_stays_small() -> None:
    assert not (TEST_DATA / "liveness").exists(), "liveness/ (NUAA, apfol_replay, seed) may not be redistributed"
    assert not list(TEST_DATA.rglob("*.reference.npz")), "the reference crops are cut from NUAA and seed images"
    total = sum(p.stat().st_size for p in TEST_DATA.rglob("*") if p.is_file())
    assert total <= BUDGET_BYTES, f"tests/data is {total / 2**20:.1f} MiB"
