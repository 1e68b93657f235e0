"""The start-up check refuses unusable certificate material with one line naming the file."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from securechat.errors import CertificateError, InvalidArgument
from securechat.pki import (
    ClientMaterial,
    DevPki,
    ServerMaterial,
    load_client_material,
    load_server_material,
)
from securechat.pki.keys import generate_key


def server_paths(pki: DevPki) -> tuple[Path, Path, Path]:
    return pki.ca_cert, pki.server_cert, pki.server_key


def refusal(call: Callable[..., object], *args: Path, now: datetime) -> str:
    with pytest.raises(CertificateError) as info:
        call(*args, now=now)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_good_server_material_is_returned_as_read(dev_pki: DevPki, now: datetime) -> None:
    material = load_server_material(*server_paths(dev_pki), now=now)
    assert material == ServerMaterial(
        ca_pem=dev_pki.ca_cert.read_bytes(),
        cert_pem=dev_pki.server_cert.read_bytes(),
        key_pem=dev_pki.server_key.read_bytes(),
    )


def test_good_client_material_is_returned_as_read(dev_pki: DevPki, now: datetime) -> None:
    client = dev_pki.client("client")
    material = load_client_material(dev_pki.ca_cert, client.cert, client.key, now=now)
    assert isinstance(material, ClientMaterial)
    assert material.key_pem == client.key.read_bytes()


@pytest.mark.parametrize("which", [0, 1, 2])
def test_missing_file_is_named(dev_pki: DevPki, now: datetime, which: int) -> None:
    paths = list(server_paths(dev_pki))
    paths[which].unlink()
    message = refusal(load_server_material, *paths, now=now)
    assert str(paths[which]) in message
    assert "not found" in message


def test_unreadable_file_is_named(dev_pki: DevPki, now: datetime) -> None:
    dev_pki.server_key.unlink()
    dev_pki.server_key.mkdir()  # reading a directory fails even for root
    message = refusal(load_server_material, *server_paths(dev_pki), now=now)
    assert str(dev_pki.server_key) in message
    assert "directory" in message


@pytest.mark.parametrize("which", [0, 1, 2])
def test_garbage_pem_is_named(dev_pki: DevPki, now: datetime, which: int) -> None:
    paths = server_paths(dev_pki)
    paths[which].write_bytes(
        b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
    )
    message = refusal(load_server_material, *paths, now=now)
    assert str(paths[which]) in message
    assert "not a valid PEM" in message


def test_mismatched_key_is_named(dev_pki: DevPki, now: datetime) -> None:
    client = dev_pki.client("client")
    message = refusal(
        load_server_material, dev_pki.ca_cert, dev_pki.server_cert, client.key, now=now
    )
    assert message == f"{client.key}: private key does not match its certificate"


def test_encrypted_key_is_refused(dev_pki: DevPki, now: datetime) -> None:
    pem = generate_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    dev_pki.server_key.write_bytes(pem)
    message = refusal(load_server_material, *server_paths(dev_pki), now=now)
    assert str(dev_pki.server_key) in message
    assert "encrypted" in message


def test_expired_certificate_is_named(dev_pki: DevPki, now: datetime) -> None:
    old = dev_pki.client("old")
    message = refusal(load_client_material, dev_pki.ca_cert, old.cert, old.key, now=now)
    assert message.startswith(f"{old.cert}: certificate expired on ")


def test_server_certificate_expires_after_825_days(dev_pki: DevPki, now: datetime) -> None:
    later = now + timedelta(days=826)
    message = refusal(load_server_material, *server_paths(dev_pki), now=later)
    assert str(dev_pki.server_cert) in message
    assert "expired" in message


def test_not_yet_valid_certificate_is_named(dev_pki: DevPki, now: datetime) -> None:
    earlier = now - timedelta(days=1)
    message = refusal(load_server_material, *server_paths(dev_pki), now=earlier)
    assert "not valid until" in message
    assert str(dev_pki.ca_cert) in message


def test_certificate_from_another_ca_is_named(dev_pki: DevPki, now: datetime) -> None:
    stranger = dev_pki.client("stranger")
    message = refusal(load_client_material, dev_pki.ca_cert, stranger.cert, stranger.key, now=now)
    assert message == f"{stranger.cert}: certificate is not signed by the CA in {dev_pki.ca_cert}"


def test_server_refuses_a_client_certificate(dev_pki: DevPki, now: datetime) -> None:
    client = dev_pki.client("client")
    message = refusal(load_server_material, dev_pki.ca_cert, client.cert, client.key, now=now)
    assert str(client.cert) in message
    assert "not a server certificate" in message


def test_client_refuses_the_server_certificate(dev_pki: DevPki, now: datetime) -> None:
    message = refusal(load_client_material, *server_paths(dev_pki), now=now)
    assert "not a client certificate" in message


def test_naive_now_is_an_invalid_argument(dev_pki: DevPki) -> None:
    with pytest.raises(InvalidArgument):
        load_server_material(*server_paths(dev_pki), now=datetime(2026, 1, 15))
