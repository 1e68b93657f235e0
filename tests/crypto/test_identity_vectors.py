"""Frozen known-answer vectors for accounts and devices: the code must reproduce them exactly.

Everything is built from fixed seeds (Ed25519 signatures and ChaCha20-Poly1305 are
deterministic), so another implementation can check its encodings, signatures, key derivations
and link messages byte for byte against ``data/identity_vectors_v1.json``.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from securechat.crypto.account_key import AccountKeyPair
from securechat.crypto.account_password import (
    LoginParameters,
    derive_password_keys,
    fake_login_salt,
)
from securechat.crypto.certificates import (
    AccountBinding,
    DeviceCertificate,
    DeviceListHead,
    DeviceRemoval,
    identity_digest,
)
from securechat.crypto.identity import IdentityKeyPair
from securechat.crypto.keystore import Argon2Params
from securechat.crypto.labels import sha256
from securechat.crypto.link_code import LinkCode
from securechat.crypto.linking import LinkJoiner, LinkOffer
from securechat.crypto.safety_number import account_safety_number

from ._support import NOW, DeterministicRandomness, load_json

VECTORS_FILE = "identity_vectors_v1.json"


def _seed(name: str, size: int = 32) -> bytes:
    return (sha256(name.encode()) + sha256(name.encode() + b"/2"))[:size]


def _statement(statement: DeviceCertificate | DeviceRemoval) -> dict[str, Any]:
    return {
        "user": statement.user,
        "device_id": statement.device_id,
        "identity": statement.identity.to_bytes().hex(),
        "issued_at": statement.issued_at,
        "signed_message": statement.message().hex(),
        "encoded": statement.to_bytes().hex(),
    }


def build_vectors() -> dict[str, Any]:
    account = AccountKeyPair.from_bytes(_seed("alice account"))
    bob_account = AccountKeyPair.from_bytes(_seed("bob account"))
    laptop = IdentityKeyPair.from_bytes(_seed("alice laptop", 64))
    desktop = IdentityKeyPair.from_bytes(_seed("alice desktop", 64))
    certificate = DeviceCertificate.issue(account, "alice", 2, desktop.public, NOW)
    removal = DeviceRemoval.issue(account, "alice", 2, desktop.public, NOW + 3600)
    head = DeviceListHead.issue(account, "alice", 2, NOW, {1: laptop.public, 2: desktop.public})
    binding = AccountBinding.issue(desktop, "alice", 2, account.public)
    login = LoginParameters(bytes(range(16)), Argon2Params(iterations=2, lanes=1, memory_cost=64))
    keys = derive_password_keys("correct horse battery staple", login)
    offer = LinkOffer(
        X25519PrivateKey.from_private_bytes(_seed("link offer")), b"\x01\x02\x03\x04", NOW
    )
    joiner = LinkJoiner(LinkCode.parse(offer.code.text()), DeterministicRandomness(b"link joiner"))
    request = joiner.request_message(offer.offer_message(), desktop, "alice", 2)
    offer.open_request(request, now=NOW + 1)
    grant = offer.seal_grant(account, certificate, head, b"\x00\x00\x00\x00")
    joiner.open_grant(grant)
    return {
        "note": (
            "docs/e2e-wire.md 'Identity and devices'. 32-byte seeds are SHA-256(name); 64-byte "
            "identity seeds append SHA-256(name + '/2'). Times are seconds since the epoch."
        ),
        "account_seed": account.to_bytes().hex(),
        "account_key": account.public.to_bytes().hex(),
        "account_fingerprint": account.public.fingerprint().hex(),
        "laptop_identity_private": laptop.to_bytes().hex(),
        "desktop_identity_private": desktop.to_bytes().hex(),
        "desktop_identity": desktop.public.to_bytes().hex(),
        "desktop_identity_digest": identity_digest(desktop.public).hex(),
        "certificate": _statement(certificate),
        "removal": _statement(removal),
        "device_list": {
            "version": head.version,
            "issued_at": head.issued_at,
            "signed_message": head.message().hex(),
            "digest": head.digest().hex(),
            "encoded": head.to_bytes().hex(),
        },
        "account_binding": binding.to_bytes().hex(),
        "account_safety_number": {
            "alice": account.public.to_bytes().hex(),
            "bob": bob_account.public.to_bytes().hex(),
            "number": account_safety_number("alice", account.public, "bob", bob_account.public),
        },
        "password": {
            "password": "correct horse battery staple",
            "salt": login.salt.hex(),
            "iterations": login.params.iterations,
            "lanes": login.params.lanes,
            "memory_kib": login.params.memory_cost,
            "authenticator": keys.authenticator.hex(),
            "authenticator_text": keys.authenticator_text(),
            "keystore_key": keys.keystore_key.hex(),
        },
        "fake_login_salt": {
            "server_secret": bytes(32).hex(),
            "user": "nobody",
            "salt": fake_login_salt(bytes(32), "nobody").hex(),
        },
        "link": {
            "offer_ephemeral_private": _seed("link offer").hex(),
            "secret": "01020304",
            "request_ephemeral_private": DeterministicRandomness(b"link joiner")
            .x25519()
            .private_bytes_raw()
            .hex(),
            "code": offer.code.text(),
            "relay_id": offer.code.relay_id,
            "offer": offer.offer_message().hex(),
            "request": request.hex(),
            "grant": grant.hex(),
        },
    }


def test_the_code_reproduces_the_frozen_vectors() -> None:
    frozen = load_json(VECTORS_FILE)
    produced = build_vectors()
    assert produced.keys() == frozen.keys()
    for name in frozen:
        assert produced[name] == frozen[name], name


def test_the_frozen_statements_verify() -> None:
    frozen = load_json(VECTORS_FILE)
    DeviceCertificate.from_bytes(bytes.fromhex(frozen["certificate"]["encoded"])).verify()
    DeviceRemoval.from_bytes(bytes.fromhex(frozen["removal"]["encoded"])).verify()
    DeviceListHead.from_bytes(bytes.fromhex(frozen["device_list"]["encoded"])).verify()
    AccountBinding.from_bytes(bytes.fromhex(frozen["account_binding"])).verify()
