"""Regenerate the frozen room vectors and states: ``python -m tests.crypto.make_room_vectors``.

Only for an intentional, documented change of the rooms wire format or state format
(docs/e2e-wire-rooms.md): the tests exist to catch accidental ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .test_room_vectors import STATES_FILE, VECTORS_FILE, build_states, build_vectors

DATA = Path(__file__).parent / "data"


def main() -> None:
    (DATA / VECTORS_FILE).write_text(json.dumps(build_vectors(), indent=1) + "\n")
    (DATA / STATES_FILE).write_text(json.dumps(build_states(), indent=1) + "\n")
    sys.stdout.write("regenerated\n")


if __name__ == "__main__":
    main()
