"""Regenerate frozen crypto data files: ``python -m tests.crypto.make_golden TARGET...`` (rarely!).

Only run this for an intentional, documented protocol or format change: the tests exist to
catch accidental ones. Each target rewrites one file (a real ML-KEM encapsulation is random,
so regenerating the transcript changes its bytes). ``keystore_v1.bin`` is frozen for good (this
code no longer writes format 1); it is never regenerated.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from securechat.crypto.account_password import derive_password_keys
from securechat.crypto.keystore import Keystore

from .test_golden import TRANSCRIPT_FILE, build_transcript
from .test_identity_vectors import VECTORS_FILE, build_vectors
from .test_keystore import GOLDEN_V2_LOGIN, GOLDEN_V2_PASSWORD, GOLDEN_V2_STATE
from .test_wire_vectors import VECTORS_FILE as WIRE_FILE
from .test_wire_vectors import build_vectors as build_wire_vectors

DATA = Path(__file__).parent / "data"


def _keystore_v2() -> None:
    golden = DATA / "keystore_v2.bin"
    sidecar = golden.with_name(golden.name + ".generation")
    for path in (golden, sidecar):
        path.unlink(missing_ok=True)
    keys = derive_password_keys(GOLDEN_V2_PASSWORD, GOLDEN_V2_LOGIN)
    Keystore.create_with_keys(golden, keys, GOLDEN_V2_STATE)
    sidecar.unlink()


def _transcript() -> None:
    transcript, kem = build_transcript(None)
    transcript["kem_encapsulations"] = [[ss.hex(), ct.hex()] for ss, ct in kem]
    (DATA / TRANSCRIPT_FILE).write_text(json.dumps(transcript, indent=1) + "\n")


def _identity() -> None:
    (DATA / VECTORS_FILE).write_text(json.dumps(build_vectors(), indent=1) + "\n")


def _wire() -> None:
    """A new real ML-KEM encapsulation: every byte after it changes."""
    (DATA / WIRE_FILE).write_text(json.dumps(build_wire_vectors(None), indent=1) + "\n")


TARGETS = {
    "transcript": _transcript,
    "keystore_v2": _keystore_v2,
    "identity": _identity,
    "wire": _wire,
}


def main() -> None:
    names = sys.argv[1:]
    if not names or not set(names) <= set(TARGETS):
        sys.stderr.write(f"usage: python -m tests.crypto.make_golden {'|'.join(TARGETS)}...\n")
        sys.exit(64)
    for name in names:
        TARGETS[name]()
        sys.stdout.write(f"regenerated {name}\n")


if __name__ == "__main__":
    main()
