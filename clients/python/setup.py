"""Builds the tally.v1 Python package from the repository's proto/ at build time.

Why at build time rather than checked in: the generated modules then always
match the proto/ of the checkout they are installed from, review diffs hold
no generated code, and an API that grows needs no regeneration step that
someone could forget. The price is that the package builds from a checkout
(or with TALLY_PROTO_DIR naming a proto/ directory), not from an sdist alone.

protoc (from grpcio-tools) writes, for each tally/v1/*.proto:
  *_pb2.py       messages           *_pb2.pyi       their types (--pyi_out)
  *_pb2_grpc.py  stubs and servicers *_pb2_grpc.pyi typed stubs (mypy-protobuf)
google/api and google/rpc come from googleapis-common-protos at run time;
google/protobuf from protobuf.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent
# Generated here (ignored by git), then packaged like hand-written sources.
GENERATED = Path("build") / "generated"


def proto_dir() -> Path:
    candidates = [os.environ.get("TALLY_PROTO_DIR"), HERE.parent.parent / "proto"]
    for c in candidates:
        if c and (Path(c) / "tally" / "v1").is_dir():
            return Path(c).resolve()
    raise SystemExit(
        "tally-client: cannot find proto/tally/v1. Install from a Tally checkout "
        "(pip install ./clients/python) or set TALLY_PROTO_DIR to its proto/ directory."
    )


def generate(out: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    src = proto_dir()
    files = sorted(str(p.relative_to(src)) for p in (src / "tally" / "v1").glob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    args = [
        "protoc",
        f"-I{src}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
    ]
    # mypy-protobuf's plugin types the gRPC stubs (protoc's --pyi_out types messages only).
    plugin = shutil.which("protoc-gen-mypy_grpc") or str(Path(sys.executable).parent / "protoc-gen-mypy_grpc")
    if Path(plugin).exists():
        args += [f"--plugin=protoc-gen-mypy_grpc={plugin}", f"--mypy_grpc_out={out}"]
    if protoc.main(args + files) != 0:
        raise SystemExit(f"tally-client: protoc failed on {src}")
    for package in (out / "tally", out / "tally" / "v1"):
        (package / "__init__.py").touch()
    (out / "tally" / "py.typed").touch()


# setup.py runs once per build hook (requirements, metadata, wheel); protoc is
# fast and deterministic, so generating every time keeps the hooks consistent.
# A fresh build/ each time: setuptools would otherwise keep modules of proto
# files since removed in build/lib and ship them.
shutil.rmtree(HERE / "build", ignore_errors=True)
generate(HERE / GENERATED)

setup(
    packages=["tally", "tally.v1"],
    package_dir={"": str(GENERATED)},
    package_data={"tally": ["py.typed"], "tally.v1": ["*.pyi"]},
)
