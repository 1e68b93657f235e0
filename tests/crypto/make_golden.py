"""Regenerate the frozen crypto data files: ``python -m tests.crypto.make_golden`` (rarely!).

Only run this for an intentional, documented protocol or format change: the tests exist to
catch accidental ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from securechat.crypto.keystore import Argon2Params, Keystore

from .test_golden import TRANSCRIPT_FILE, build_transcript
from .test_keystore import GOLDEN_PASSPHRASE, GOLDEN_STATE, TINY

DATA = Path(__file__).parent / "data"


def main() -> None:
    transcript, kem = build_transcript(None)
    transcript["kem_encapsulations"] = [[ss.hex(), ct.hex()] for ss, ct in kem]
    (DATA / TRANSCRIPT_FILE).write_text(json.dumps(transcript, indent=1) + "\n")
    golden = DATA / "keystore_v1.bin"
    for path in (golden, golden.with_name(golden.name + ".generation")):
        path.unlink(missing_ok=True)
    params: Argon2Params = TINY
    Keystore.create(golden, GOLDEN_PASSPHRASE, GOLDEN_STATE, params=params)
    golden.with_name(golden.name + ".generation").unlink()
    sys.stdout.write("regenerated\n")


if __name__ == "__main__":
    main()
