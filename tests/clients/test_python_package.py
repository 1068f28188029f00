"""The Python client is generated from proto/ when it is built: its wheel
holds a module, typed stubs and gRPC stubs for every tally/v1 file, and is
marked typed. (CI's clients step then runs its example against a server.)"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--wheel-dir", str(out), str(ROOT / "clients" / "python")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("tally_client-*.whl")
    return zipfile.ZipFile(built)


def test_every_proto_file_becomes_typed_modules(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    protos = sorted(p.stem for p in (ROOT / "proto" / "tally" / "v1").glob("*.proto"))
    assert protos, "no proto files found"
    for stem in protos:
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"):
            assert f"tally/v1/{stem}{suffix}" in names, f"{stem}{suffix} missing from the wheel"
    assert "tally/py.typed" in names
    assert "tally/__init__.py" in names and "tally/v1/__init__.py" in names


def test_stubs_are_typed(wheel: zipfile.ZipFile) -> None:
    stub = wheel.read("tally/v1/ingest_service_pb2_grpc.pyi").decode()
    assert "class IngestServiceStub" in stub
    assert "SubmitRecordsRequest" in stub and "SubmitRecordsResponse" in stub
    messages = wheel.read("tally/v1/common_pb2.pyi").decode()
    assert "class Money" in messages and "currency_code: str" in messages


def test_runtime_dependencies_are_pinned(wheel: zipfile.ZipFile) -> None:
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    requires = [line for line in wheel.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")]
    assert {r.split(":", 1)[1].strip().split("==")[0] for r in requires} == {"grpcio", "protobuf", "googleapis-common-protos"}
    assert all("==" in r for r in requires), requires
