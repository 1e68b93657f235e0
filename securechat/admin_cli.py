"""securechat-admin: the operator's command line (certificates; later the server admin API).

Every command raises :class:`~securechat.errors.SecureChatError` for anything the operator can
fix; :class:`AdminGroup` is the one place that turns it into ``error: <message>`` on stderr and
the error's exit code. Heavy imports (``cryptography`` via ``securechat.pki``) happen inside the
commands so ``--help`` is instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from securechat.errors import SecureChatError

__all__ = ["AdminGroup", "cli", "main"]


class AdminGroup(click.Group):
    """A click group that reports SecureChatError as one line and exits with its code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SecureChatError as err:
            click.echo(f"error: {err.message}", err=True)
            ctx.exit(err.exit_code)


@click.group(cls=AdminGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Administer a securechat deployment."""


def main() -> None:
    """Console-script entry point (``securechat-admin``)."""
    cli.main(prog_name="securechat-admin")


# ---------------------------------------------------------------------------------------------
# certs: the PKI (securechat.pki). Certificates, keys and revoked.json live in --dir.
# ---------------------------------------------------------------------------------------------

_DIR_OPTION = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("certs"),
    show_default=True,
    envvar="SECURECHAT_CERTS_DIR",
    help="PKI directory holding ca.crt, ca.key and revoked.json.",
)
_DAYS_HELP = "Validity of the issued certificate in days."


def _print_written(files: list[Any]) -> None:
    for written in files:
        if written.kind == "certificate":
            click.echo(f"wrote {written.path}  SHA-256 {written.fingerprint}")
        else:
            click.echo(f"wrote {written.path}  (private key, mode 0600: keep it secret)")


@cli.group()
def certs() -> None:
    """Create, issue, show and revoke certificates (dev PKI)."""


@certs.command("init")
@_DIR_OPTION
@click.option("--host", "hosts", multiple=True, metavar="NAME", help="Extra server DNS name/IP.")
@click.option("--days", type=int, default=825, show_default=True, help=_DAYS_HELP)
@click.option("--ca-days", type=int, default=3650, show_default=True, help="CA validity in days.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def certs_init(
    directory: Path, hosts: tuple[str, ...], days: int, ca_days: int, force: bool
) -> None:
    """Create a CA and a server certificate (localhost, 127.0.0.1, ::1 and each --host)."""
    from securechat.pki import init_pki

    _print_written(init_pki(directory, hosts=hosts, days=days, ca_days=ca_days, force=force))


@certs.command("issue")
@click.argument("name")
@_DIR_OPTION
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write NAME.crt and NAME.key [default: --dir].",
)
@click.option("--days", type=int, default=825, show_default=True, help=_DAYS_HELP)
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def certs_issue(name: str, directory: Path, out_dir: Path | None, days: int, force: bool) -> None:
    """Issue client certificate NAME.crt (CN=NAME) signed by the CA in --dir."""
    from securechat.pki import issue_client

    _print_written(issue_client(name, directory=directory, out_dir=out_dir, days=days, force=force))


@certs.command("show")
@_DIR_OPTION
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
def certs_show(directory: Path, files: tuple[Path, ...]) -> None:
    """Describe FILES (default: every *.crt in --dir), including revocation."""
    from securechat.pki import show_certificates

    for index, shown in enumerate(show_certificates(directory, files)):
        d = shown.details
        if index:
            click.echo()
        click.echo(f"{shown.path}")
        click.echo(f"  subject:      {d.subject}")
        click.echo(f"  issuer:       {d.issuer}")
        click.echo(f"  serial:       {d.serial}")
        click.echo(f"  not before:   {d.not_before:%Y-%m-%d %H:%M:%S} UTC")
        click.echo(f"  not after:    {d.not_after:%Y-%m-%d %H:%M:%S} UTC")
        click.echo(f"  CA:           {'yes' if d.is_ca else 'no'}")
        click.echo(f"  SANs:         {', '.join(d.subject_alt_names) or '-'}")
        click.echo(f"  key usage:    {', '.join(d.key_usage) or '-'}")
        click.echo(f"  ext. usage:   {', '.join(d.extended_key_usage) or '-'}")
        click.echo(f"  SHA-256:      {d.fingerprint}")
        status = f"yes (since {shown.revoked.revoked_at})" if shown.revoked else "no"
        click.echo(f"  revoked:      {status}")


@certs.command("revoke")
@click.argument("target", metavar="NAME|SERIAL")
@_DIR_OPTION
def certs_revoke(target: str, directory: Path) -> None:
    """Revoke client certificate --dir/NAME.crt (or the one with serial SERIAL, in hex)."""
    from securechat.pki import revoke

    result = revoke(target, directory=directory)
    entry = result.entry
    verb = "already revoked" if result.already_revoked else "revoked"
    click.echo(
        f"{verb}: {result.path} (CN={entry.subject_cn}, serial {entry.serial}, "
        f"SHA-256 {entry.fingerprint}) in {result.revocation_list}"
    )


# ---------------------------------------------------------------------------------------------
# Server admin API (AdminService over mTLS): `clients`, `kick`, `stats`, `rooms` go here as
# separate commands registered on `cli` (e.g. `cli.add_command(clients)`), each importing the
# grpc client lazily inside the command like the certs commands above.
# ---------------------------------------------------------------------------------------------


if __name__ == "__main__":  # pragma: no cover
    main()
