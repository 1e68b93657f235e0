"""The client's one channel factory refuses unusable certificate files with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from securechat.client.rpc import Endpoint
from securechat.errors import CertificateError, InvalidArgument
from securechat.pki import DevPki


def endpoint(pki: DevPki, client: str = "client", **paths: Path) -> Endpoint:
    """The Endpoint of dev client ``client``, with any of ca/cert/key replaced."""
    mine = pki.client(client)
    return Endpoint(
        "localhost:1",
        paths.get("ca", pki.ca_cert),
        paths.get("cert", mine.cert),
        paths.get("key", mine.key),
    )


def test_good_files_load_as_read(pki: DevPki) -> None:
    material = endpoint(pki).load()
    assert material.cert_pem == pki.client("client").cert.read_bytes()
    assert material.ca_pem == pki.ca_cert.read_bytes()


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("ca", "CA certificate .* not found: pass --ca or set SECURECHAT_CA"),
        ("cert", "client certificate .* not found: pass --cert or set SECURECHAT_CERT"),
        ("key", "client key .* not found: pass --key or set SECURECHAT_KEY"),
    ],
)
def test_a_missing_file_names_the_option_and_the_variable(
    pki: DevPki, tmp_path: Path, which: str, message: str
) -> None:
    with pytest.raises(CertificateError, match=message):
        endpoint(pki, **{which: tmp_path / "nowhere.pem"}).load()


def test_unusable_certificates_are_refused_before_dialing(pki: DevPki, tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="expired"):
        endpoint(pki, "expired").load()
    with pytest.raises(CertificateError, match="not signed by the CA"):
        endpoint(pki, "foreign").load()
    with pytest.raises(CertificateError, match="does not match"):
        endpoint(pki, key=pki.client("alice").key).load()
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate")
    with pytest.raises(CertificateError, match="not a valid PEM certificate"):
        endpoint(pki, cert=garbage).load()


def test_a_bad_address_is_refused_before_the_files_are_read(pki: DevPki, tmp_path: Path) -> None:
    bad = Endpoint("no-port", tmp_path / "a", tmp_path / "b", tmp_path / "c")
    with pytest.raises(InvalidArgument, match="HOST:PORT"):
        bad.open()
