"""Without ML-KEM the client fails closed, with a clear message, before making any key."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.exceptions import UnsupportedAlgorithm

from securechat.client.vault import Vault
from securechat.crypto import randomness
from securechat.errors import CryptoError


def test_vault_refuses_to_start_without_ml_kem(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class NoKem:
        @staticmethod
        def generate() -> None:
            raise UnsupportedAlgorithm("ML-KEM-768 is not supported by this backend")

    monkeypatch.setattr(randomness, "MLKEM768PrivateKey", NoKem)
    with pytest.raises(CryptoError, match="ML-KEM-768"):
        Vault.new_account("alice", 1)
    assert not (tmp_path / "keystore").exists()
