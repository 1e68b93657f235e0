"""The wheel: built from the checkout, installed into a fresh venv, the generated stubs import
with no sys.path help, from a directory outside the checkout."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

CHECK = """
import pathlib, sys
from securechat_proto.v1 import auth_pb2, chat_pb2, chat_pb2_grpc, admin_pb2_grpc
import securechat, securechat_proto
frame = chat_pb2.ClientFrame(open=chat_pb2.OpenStream(device_id=3))
assert chat_pb2.ClientFrame.FromString(frame.SerializeToString()).open.device_id == 3
assert hasattr(chat_pb2_grpc, "ChatServiceStub")
print(securechat.__file__)
print(securechat_proto.__file__)
"""


def pinned(*names: str) -> list[str]:
    """The requirement strings of pyproject.toml for these distributions."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    found = [d for d in deps if d.split("=")[0].split(">")[0].split("<")[0].strip() in names]
    assert len(found) == len(names), found
    return found


def run(*command: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


def test_wheel_installs_into_a_fresh_venv_and_the_stubs_import(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, ROOT, cwd=tmp_path)
    (wheel,) = dist.glob("securechat-*.whl")

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    # --no-deps keeps it fast: the stubs need only protobuf and grpcio, pinned as in pyproject.
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", wheel, cwd=tmp_path)
    run(python, "-m", "pip", "install", "--quiet", *pinned("protobuf", "grpcio"), cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    securechat_file, generated_file = run(python, "-c", CHECK, cwd=elsewhere).split()
    for path in (Path(securechat_file), Path(generated_file)):
        assert path.is_relative_to(venv), path
        assert not path.is_relative_to(ROOT), path
