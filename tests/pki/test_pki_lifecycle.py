"""The whole certificate life: re-issuing revokes what it replaces, any issued serial can be
revoked, the server certificate is re-issued from the same CA, `make certs` makes what the admin
CLI uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from securechat.admin_cli import DEFAULT_CERT, DEFAULT_KEY, cli
from securechat.pki import RevocationList, describe, load_certificate

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def init(directory: Path, *args: str) -> Path:
    result = run("certs", "init", "--dir", str(directory), *args)
    assert result.exit_code == 0, result.output
    return directory


def serial(path: Path) -> str:
    return format(load_certificate(path).serial_number, "x")


def revoked_serials(directory: Path) -> set[str]:
    return {e.serial for e in RevocationList.load(directory / "revoked.json").entries}


def test_issue_force_revokes_the_certificate_it_replaces(tmp_path: Path) -> None:
    certs = init(tmp_path / "certs")
    assert run("certs", "issue", "alice", "--dir", str(certs)).exit_code == 0
    old = serial(certs / "alice.crt")
    result = run("certs", "issue", "alice", "--dir", str(certs), "--force")
    assert result.exit_code == 0, result.output
    new = serial(certs / "alice.crt")
    assert new != old and revoked_serials(certs) == {old}
    assert f"revoked the certificate it replaces (CN=alice, serial {old})" in result.stdout
    # A first issue with --force (nothing to replace) revokes nothing.
    assert run("certs", "issue", "bob", "--dir", str(certs), "--force").exit_code == 0
    assert revoked_serials(certs) == {old}


def test_any_issued_serial_can_be_revoked_after_its_file_is_gone(tmp_path: Path) -> None:
    certs = init(tmp_path / "certs")
    handover = tmp_path / "handover"
    result = run("certs", "issue", "laptop", "--dir", str(certs), "--out-dir", str(handover))
    assert result.exit_code == 0, result.output
    laptop = serial(handover / "laptop.crt")
    for name in ("laptop.crt", "laptop.key"):
        (handover / name).unlink()  # handed over: the CA folder never had it
    result = run("certs", "revoke", laptop.upper(), "--dir", str(certs))
    assert result.exit_code == 0, result.output
    assert revoked_serials(certs) == {laptop} and "CN=laptop" in result.stdout
    again = run("certs", "revoke", laptop, "--dir", str(certs))
    assert again.exit_code == 0 and again.stdout.startswith("already revoked")
    index = json.loads((certs / "issued.json").read_text())["issued"]
    assert [(e["kind"], e["subject_cn"]) for e in index] == [
        ("server", "securechat-server"), ("client", "laptop")]  # fmt: skip


def test_the_server_certificate_serial_is_refused(tmp_path: Path) -> None:
    certs = init(tmp_path / "certs")
    result = run("certs", "revoke", serial(certs / "server.crt"), "--dir", str(certs))
    assert result.exit_code == 64 and "only client certificates" in result.stderr
    assert not (certs / "revoked.json").exists()


def test_certs_server_reissues_from_the_same_ca_keeping_the_names(tmp_path: Path) -> None:
    certs = init(tmp_path / "certs", "--host", "chat.example.com")
    ca_before = (certs / "ca.crt").read_bytes()
    old_key, old = (certs / "server.key").read_bytes(), load_certificate(certs / "server.crt")
    result = run("certs", "server", "--dir", str(certs), "--host", "10.0.0.9", "--days", "30")
    assert result.exit_code == 0, result.output
    new = load_certificate(certs / "server.crt")
    assert (certs / "ca.crt").read_bytes() == ca_before  # the same CA: clients need nothing new
    new.verify_directly_issued_by(load_certificate(certs / "ca.crt"))
    assert new.serial_number != old.serial_number
    assert (certs / "server.key").read_bytes() != old_key
    assert (certs / "server.key").stat().st_mode & 0o777 == 0o600
    names = set(describe(new).subject_alt_names)
    assert {"DNS:localhost", "DNS:chat.example.com", "IP:10.0.0.9", "IP:127.0.0.1"} <= names
    assert 29 <= (new.not_valid_after_utc - new.not_valid_before_utc).days <= 31
    replaced = run("certs", "server", "--dir", str(certs), "--replace-hosts")
    assert replaced.exit_code == 0
    names = set(describe(load_certificate(certs / "server.crt")).subject_alt_names)
    assert "DNS:chat.example.com" not in names and "DNS:localhost" in names
    kinds = [e["kind"] for e in json.loads((certs / "issued.json").read_text())["issued"]]
    assert kinds == ["server", "server", "server"]


def test_certs_server_without_a_ca_is_a_one_line_error(tmp_path: Path) -> None:
    result = run("certs", "server", "--dir", str(tmp_path / "empty"))
    assert result.exit_code == 77 and "ca.crt" in result.stderr and "Traceback" not in result.output


def test_make_certs_creates_what_the_admin_cli_uses_by_default(tmp_path: Path) -> None:
    """The Makefile's `certs` target runs these two commands; the admin CLI then finds its
    certificate without --cert/--key and fails only at connecting (no server is running)."""
    makefile = (ROOT / "Makefile").read_text()
    assert (
        "certs init --dir $(CERTS)" in makefile and "certs issue client --dir $(CERTS)" in makefile
    )
    init(tmp_path / "certs")
    assert run("certs", "issue", "client", "--dir", str(tmp_path / "certs")).exit_code == 0
    assert (tmp_path / DEFAULT_CERT).is_file() and (tmp_path / DEFAULT_KEY).is_file()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECURECHAT_")}
    env["SECURECHAT_ADMIN_PASSWORD"] = "whatever it is"
    result = subprocess.run(
        [sys.executable, "-c", "from securechat.admin_cli import main; main()",
         "stats", "--server", "localhost:1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 69, result.stderr  # unreachable, not a certificate problem
    missing = subprocess.run(
        [sys.executable, "-c", "from securechat.admin_cli import main; main()",
         "stats", "--server", "localhost:1"],
        cwd=tmp_path / "certs", env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 77
    assert "`make certs`" in missing.stderr and "certs issue NAME" in missing.stderr
