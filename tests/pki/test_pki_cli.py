"""securechat-admin certs: init, issue, show, revoke, and one-line errors with exit codes."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from securechat.admin_cli import cli
from securechat.errors import AlreadyExists, CertificateError, InvalidArgument, NotFound
from securechat.pki import fingerprint, load_certificate
from tests.support.process import clean_env

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def assert_one_line_error(result: Result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    directory = tmp_path / "certs"
    assert run("certs", "init", "--dir", str(directory)).exit_code == 0
    assert run("certs", "issue", "client", "--dir", str(directory)).exit_code == 0
    return directory


def test_init_writes_the_ca_and_server_and_prints_fingerprints(tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    result = run("certs", "init", "--dir", str(directory), "--host", "chat.example.com")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in directory.iterdir()) == [
        "ca.crt",
        "ca.key",
        "issued.json",
        "server.crt",
        "server.key",
    ]
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in ("ca.crt", "server.crt"):
        fp = fingerprint(load_certificate(directory / name))
        assert f"{directory / name}  SHA-256 {fp}" in result.stdout
    assert f"{directory / 'ca.key'}" in result.stdout
    assert "DNS:chat.example.com" in run("certs", "show", str(directory / "server.crt")).stdout


def test_init_twice_fails_without_force(certs: Path) -> None:
    result = run("certs", "init", "--dir", str(certs))
    assert_one_line_error(result, AlreadyExists.exit_code, str(certs / "ca.crt"), "--force")
    assert run("certs", "init", "--dir", str(certs), "--force").exit_code == 0


def test_issue_writes_to_out_dir_with_a_0600_key(certs: Path, tmp_path: Path) -> None:
    out = tmp_path / "alice-files"
    result = run(
        "certs", "issue", "alice", "--dir", str(certs), "--out-dir", str(out), "--days", "7"
    )
    assert result.exit_code == 0, result.output
    cert = load_certificate(out / "alice.crt")
    assert fingerprint(cert) in result.stdout
    assert stat.S_IMODE((out / "alice.key").stat().st_mode) == 0o600
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 7


def test_issue_errors(certs: Path, tmp_path: Path) -> None:
    assert_one_line_error(
        run("certs", "issue", "client", "--dir", str(certs)),
        AlreadyExists.exit_code,
        "client.crt already exists",
    )
    assert_one_line_error(
        run("certs", "issue", "../evil", "--dir", str(certs)),
        InvalidArgument.exit_code,
        "invalid client name",
    )
    assert_one_line_error(
        run("certs", "issue", "server", "--dir", str(certs)), InvalidArgument.exit_code, "reserved"
    )
    assert_one_line_error(
        run("certs", "issue", "bob", "--dir", str(certs), "--days", "0"),
        InvalidArgument.exit_code,
        "--days",
    )
    assert_one_line_error(
        run("certs", "issue", "bob", "--dir", str(tmp_path / "nowhere")),
        CertificateError.exit_code,
        "ca.crt: file not found",
    )
    assert not (certs / "bob.crt").exists()


def test_show_lists_every_certificate_with_revocation(certs: Path) -> None:
    result = run("certs", "show", "--dir", str(certs))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index("ca.crt") < out.index("server.crt") < out.index("client.crt")
    for needle in (
        "subject:      CN=securechat-server,O=securechat",
        "issuer:       CN=securechat development CA",
        "DNS:localhost, IP:127.0.0.1, IP:::1",
        "ext. usage:   serverAuth",
        "ext. usage:   clientAuth",
        "key usage:    digitalSignature, keyCertSign, cRLSign",
        fingerprint(load_certificate(certs / "client.crt")),
        "not after:",
        "serial:",
    ):
        assert needle in out
    assert "revoked:      yes" not in out


def test_show_errors(tmp_path: Path) -> None:
    assert_one_line_error(
        run("certs", "show", "--dir", str(tmp_path)), NotFound.exit_code, "no certificates"
    )
    junk = tmp_path / "junk.crt"
    junk.write_text("junk")
    assert_one_line_error(
        run("certs", "show", str(junk)), CertificateError.exit_code, f"{junk}: not a valid PEM"
    )


def test_revoke_by_name_then_show_reports_it(certs: Path) -> None:
    result = run("certs", "revoke", "client", "--dir", str(certs))
    assert result.exit_code == 0, result.output
    cert = load_certificate(certs / "client.crt")
    assert result.stdout.startswith(f"revoked: {certs / 'client.crt'} (CN=client")
    assert fingerprint(cert) in result.stdout
    doc = json.loads((certs / "revoked.json").read_text())
    assert [e["subject_cn"] for e in doc["revoked"]] == ["client"]
    again = run("certs", "revoke", "client", "--dir", str(certs))
    assert again.exit_code == 0
    assert again.stdout.startswith("already revoked:")
    assert len(json.loads((certs / "revoked.json").read_text())["revoked"]) == 1
    assert "revoked:      yes (since " in run("certs", "show", "--dir", str(certs)).stdout


def test_revoke_by_serial(certs: Path) -> None:
    serial = format(load_certificate(certs / "client.crt").serial_number, "X")
    result = run("certs", "revoke", serial, "--dir", str(certs))
    assert result.exit_code == 0, result.output
    assert "CN=client" in result.stdout


def test_revoke_errors(certs: Path) -> None:
    assert_one_line_error(
        run("certs", "revoke", "nobody", "--dir", str(certs)), NotFound.exit_code, "nobody.crt"
    )
    assert_one_line_error(
        run("certs", "revoke", "ca", "--dir", str(certs)),
        InvalidArgument.exit_code,
        "not a client certificate",
    )
    assert not (certs / "revoked.json").exists()


def test_usage_errors_are_click_errors_not_tracebacks() -> None:
    result = run("certs", "revoke")
    assert result.exit_code == 2
    assert "Missing argument" in result.stderr


def test_console_script_prints_one_line_and_exit_code(tmp_path: Path) -> None:
    code = "from securechat.admin_cli import main; main()"
    argv = [sys.executable, "-c", code, "certs", "issue", "x", "--dir", str(tmp_path)]
    env = clean_env(tmp_path / "home")
    proc = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=30, cwd=ROOT, env=env
    )
    assert proc.returncode == CertificateError.exit_code
    assert proc.stderr.startswith("error: ")
    assert proc.stderr.count("\n") == 1


def test_help_does_not_import_cryptography(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from securechat.admin_cli import cli\n"
        "try:\n    cli.main(['certs', '--help'])\n"
        "except SystemExit:\n    pass\n"
        "assert 'cryptography' not in sys.modules, 'cryptography imported by --help'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        cwd=ROOT,
        env=clean_env(tmp_path / "home"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "init" in proc.stdout
    assert "revoke" in proc.stdout
