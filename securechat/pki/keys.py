"""Private keys and PKI files: EC P-256 generation, PEM encoding, atomic writes with safe modes.

Every file the PKI writes goes through :func:`write_file`: the bytes land in a temporary file in
the target directory, created with ``O_CREAT | O_EXCL`` and mode 0600 from the first moment, are
fsynced, get their final mode (0600 for keys, 0644 for certificates) and are then moved into place.
A private key is therefore never readable by anyone but its owner, not even for an instant, and a
reader never sees a half-written file.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from securechat.atomicfile import write_atomically
from securechat.errors import AlreadyExists, CertificateError

KEY_MODE = 0o600
CERT_MODE = 0o644
DIR_MODE = 0o700

__all__ = [
    "CERT_MODE",
    "DIR_MODE",
    "KEY_MODE",
    "ensure_directory",
    "generate_key",
    "key_to_pem",
    "load_private_key",
    "parse_private_key",
    "read_file",
    "refuse_existing",
    "write_file",
]


def generate_key() -> ec.EllipticCurvePrivateKey:
    """Return a fresh EC P-256 private key (the only key type the PKI issues)."""
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: PrivateKeyTypes) -> bytes:
    """Encode ``key`` as unencrypted PKCS#8 PEM (what grpc and OpenSSL both read)."""
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def read_file(path: Path) -> bytes:
    """Read ``path`` or raise :class:`CertificateError` naming it (missing or unreadable)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CertificateError(
            f"{path}: file not found (create it with `securechat-admin certs init`)"
        ) from None
    except IsADirectoryError:
        raise CertificateError(f"{path}: is a directory, expected a PEM file") from None
    except OSError as exc:
        raise CertificateError(f"{path}: cannot read file: {exc.strerror or exc}") from None


def load_private_key(path: Path) -> PrivateKeyTypes:
    """Load an unencrypted PEM private key from ``path``; :class:`CertificateError` otherwise."""
    return parse_private_key(read_file(path), path)


def parse_private_key(data: bytes, path: Path) -> PrivateKeyTypes:
    """Parse PEM key bytes read from ``path`` (named in the error when they are not a key)."""
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CertificateError(
            f"{path}: the private key is encrypted; securechat needs an unencrypted PEM key"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError(f"{path}: not a valid PEM private key") from None


def ensure_directory(directory: Path) -> None:
    """Create ``directory`` (and parents) with mode 0700 when it does not exist yet."""
    if directory.is_dir():
        return
    try:
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise CertificateError(
            f"{directory}: cannot create directory: {exc.strerror or exc}"
        ) from None


def refuse_existing(paths: list[Path]) -> None:
    """Raise :class:`AlreadyExists` for the first of ``paths`` that exists (nothing is written)."""
    for path in paths:
        if path.exists():
            raise AlreadyExists(f"{path} already exists: pass --force to overwrite it")


def write_file(path: Path, data: bytes, *, mode: int, force: bool = False) -> None:
    """Atomically write ``data`` to ``path`` with exactly ``mode``; never wider, not even briefly.

    Without ``force`` an existing ``path`` is left untouched and :class:`AlreadyExists` is raised.
    """
    try:
        write_atomically(path, data, mode=mode, overwrite=force)
    except FileExistsError:
        raise AlreadyExists(f"{path} already exists: pass --force to overwrite it") from None
    except OSError as exc:
        raise CertificateError(f"{path}: cannot write file: {exc.strerror or exc}") from None
