"""`buf breaking` against the checked-in API baseline (.ci/api-baseline.binpb)
fails on a change that would break a client and passes on an addition.

Each case copies buf.yaml and proto/ to a temporary directory, edits one
file there, and runs the same command CI runs. Needs buf on PATH (.ci/run
installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / ".ci" / "api-baseline.binpb"


def buf() -> str:
    path = shutil.which("buf")
    if path is None:
        pytest.fail("buf is not on PATH: npm install -g @bufbuild/buf (or pip install buf-bin)")
    return path


def breaking(workspace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [buf(), "breaking", "--against", str(BASELINE), "--error-format", "json"],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    return tmp_path


def edit(workspace: Path, file: str, pattern: str, replacement: str) -> None:
    """Edit one file of the copy, or every tally/v1 file for file="*"."""
    paths = sorted((workspace / "proto" / "tally" / "v1").glob(file))
    assert paths, file
    for path in paths:
        text = path.read_text()
        edited, n = re.subn(pattern, replacement, text, count=1, flags=re.M)
        assert n == 1, f"{pattern!r} not found in {path.name}: the test needs updating"
        path.write_text(edited)


def rules(result: subprocess.CompletedProcess[str]) -> set[str]:
    """The rule ids buf reports, one JSON object per line."""
    return {json.loads(line)["type"] for line in result.stdout.splitlines() if line.strip()}


def test_the_checked_in_api_is_compatible_with_the_baseline(workspace: Path) -> None:
    result = breaking(workspace)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_addition_is_not_breaking(workspace: Path) -> None:
    edit(workspace, "common.proto", r"^message Money \{", "message Money {\n  string note = 99;")
    edit(workspace, "exception_service.proto", r"^service ExceptionService \{",
         "service ExceptionService {\n  rpc CountExceptions(ListExceptionsRequest) returns (ListExceptionsResponse);")
    result = breaking(workspace)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "file, pattern, replacement, rule",
    [
        # A removed field: old clients' data is silently dropped.
        ("record.proto", r"^\s*Money fee = 3;.*$", "", "FIELD_NO_DELETE"),
        # A renamed RPC: every generated client stops compiling, old ones get UNIMPLEMENTED.
        ("transaction_service.proto", r"rpc GetReconciliationStatus\(", "rpc GetReconcilationState(", "RPC_NO_DELETE"),
        # A retyped field: old messages no longer decode.
        ("common.proto", r"string amount = 2;", "int64 amount = 2;", "FIELD_SAME_TYPE"),
        # A renumbered enum value: stored and in-flight values change meaning.
        ("transaction.proto", r"RECONCILIATION_STATE_MATCHED = 2;", "RECONCILIATION_STATE_MATCHED = 7;", "ENUM_VALUE_NO_DELETE"),
        # The package must stay tally.v1.
        ("*.proto", r"^package tally\.v1;", "package tally.v2;", "FILE_SAME_PACKAGE"),
    ],
    ids=["remove-field", "rename-rpc", "retype-field", "renumber-enum", "change-package"],
)
def test_a_breaking_change_fails(workspace: Path, file: str, pattern: str, replacement: str, rule: str) -> None:
    edit(workspace, file, pattern, replacement)
    result = breaking(workspace)
    assert result.returncode != 0, f"buf breaking accepted a breaking change:\n{result.stdout}"
    assert rule in rules(result), result.stdout + result.stderr


def test_baseline_is_a_buf_image_of_tally_v1() -> None:
    # `buf build` of the baseline lists its files: the API's and the vendored imports.
    result = subprocess.run(
        [buf(), "ls-files", str(BASELINE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    files = set(result.stdout.split())
    assert "tally/v1/ingest_service.proto" in files
    assert "tally/v1/transaction_service.proto" in files
