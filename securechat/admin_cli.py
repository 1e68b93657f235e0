"""securechat-admin: the operator's command line (certificates and the server admin API).

Every command raises :class:`~securechat.errors.SecureChatError` for anything the operator can
fix; :class:`AdminGroup` is the one place that turns it into ``error: <message>`` on stderr and
the error's exit code. Heavy imports (``cryptography`` via ``securechat.pki``) happen inside the
commands so ``--help`` is instant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from securechat.errors import SecureChatError

if TYPE_CHECKING:
    from securechat.client.rpc import Api

T = TypeVar("T")

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
@click.option("--server", default=None, help="Server HOST:PORT for the admin API commands.")
@click.option("--ca", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CA certificate for the admin API commands.")  # fmt: skip
@click.option("--cert", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Client certificate for the admin API commands.")  # fmt: skip
@click.option("--key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Client key for the admin API commands.")  # fmt: skip
@click.pass_context
def cli(
    ctx: click.Context, server: str | None, ca: Path | None, cert: Path | None, key: Path | None
) -> None:
    """Administer a securechat deployment."""
    # Connection options may come before the command (`securechat-admin --server H:P clients`);
    # the admin API commands use them unless given again after the command name.
    ctx.obj = {k: v for k, v in {"server": server, "ca": ca, "cert": cert, "key": key}.items()
               if v is not None}  # fmt: skip


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
    """Issue client certificate NAME.crt (CN=NAME) signed by the CA in --dir.

    With --force over an existing NAME.crt, the certificate it replaces is revoked."""
    from securechat.pki import issue_client

    result = issue_client(name, directory=directory, out_dir=out_dir, days=days, force=force)
    if (old := result.replaced) is not None:
        click.echo(f"revoked the certificate it replaces (CN={old.subject_cn}, serial "
                   f"{old.serial}) in {directory / 'revoked.json'}")  # fmt: skip
    _print_written(result.written)


@certs.command("server")
@_DIR_OPTION
@click.option("--host", "hosts", multiple=True, metavar="NAME",
              help="A DNS name or IP address to add (the current ones are kept).")  # fmt: skip
@click.option("--replace-hosts", is_flag=True,
              help="Drop the current names: only the defaults and --host.")  # fmt: skip
@click.option("--days", type=int, default=825, show_default=True, help=_DAYS_HELP)
def certs_server(directory: Path, hosts: tuple[str, ...], replace_hosts: bool, days: int) -> None:
    """Re-issue server.crt and server.key from the CA in --dir (names: localhost, 127.0.0.1,
    ::1, the current certificate's other names, and each --host). A running server picks the
    new pair up for new connections without a restart."""
    from securechat.pki import reissue_server

    _print_written(reissue_server(directory, hosts=hosts, keep_hosts=not replace_hosts, days=days))


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
# Server admin API (AdminService over mTLS): `clients`, `kick`, `stats`, `rooms`. Each command logs
# in as the admin account (SECURECHAT_ADMIN_USER; password from SECURECHAT_ADMIN_PASSWORD,
# --password-stdin or a hidden prompt), makes its calls and logs out, all through the client
# library (securechat.client.rpc: its channel, its login, its error translation). grpc is
# imported lazily.
# ---------------------------------------------------------------------------------------------

ADMIN_PASSWORD_ENV = "SECURECHAT_ADMIN_PASSWORD"  # noqa: S105 - the variable's name
# What `make certs` (and `certs init` + `certs issue client`) creates.
DEFAULT_CERT, DEFAULT_KEY = Path("certs/client.crt"), Path("certs/client.key")


def _api_options(command: Any) -> Any:
    """--server, --ca, --cert, --key, --user, --password-stdin, --device-id for an API command."""
    options = [
        click.option("--server", default="localhost:50051", show_default=True,
                     envvar="SECURECHAT_SERVER", help="The server's gRPC address HOST:PORT."),
        click.option("--ca", type=click.Path(dir_okay=False, path_type=Path),
                     default=Path("certs/ca.crt"), show_default=True, envvar="SECURECHAT_CA",
                     help="CA certificate the server's certificate must chain to."),
        click.option("--cert", type=click.Path(dir_okay=False, path_type=Path),
                     default=DEFAULT_CERT, show_default=True, envvar="SECURECHAT_CERT",
                     help="This machine's client certificate."),
        click.option("--key", type=click.Path(dir_okay=False, path_type=Path),
                     default=DEFAULT_KEY, show_default=True, envvar="SECURECHAT_KEY",
                     help="The client certificate's private key."),
        click.option("--user", envvar="SECURECHAT_ADMIN_USER", default="admin", show_default=True,
                     help="Admin account to log in as [env SECURECHAT_ADMIN_USER]."),
        click.option("--password-stdin", is_flag=True,
                     help="Read the password from the first line of stdin."),
        click.option("--device-id", type=int, default=1, show_default=True,
                     envvar="SECURECHAT_ADMIN_DEVICE",
                     help="The admin device to log in as (created on first use)."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _run_api(options: dict[str, Any], work: Callable[[Api], Awaitable[T]]) -> T:
    """Log in, run ``await work(api)``, log out; every failure a SecureChatError."""
    import asyncio

    ctx = click.get_current_context()
    merged = dict(options)
    for name, value in (ctx.find_root().obj or {}).items():
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.COMMANDLINE:
            merged[name] = value
    return asyncio.run(_api_session(merged, work))


async def _api_session(o: dict[str, Any], work: Callable[[Api], Awaitable[T]]) -> T:
    import contextlib

    from securechat.client.credentials import login_secret
    from securechat.client.passwords import SecretSource
    from securechat.client.rpc import Api, Endpoint
    from securechat.errors import CertificateError, NotFound, PermissionDenied

    endpoint = Endpoint(o["server"], Path(o["ca"]), Path(o["cert"]), Path(o["key"]))
    for what, option, path in (("client certificate", "--cert", endpoint.cert),
                               ("client key", "--key", endpoint.key)):  # fmt: skip
        if not path.exists():
            raise CertificateError(
                f"{what} {path} ({option}) not found: `make certs` creates certs/client.crt "
                "and certs/client.key, or issue one for this machine with `securechat-admin certs "
                "issue NAME --dir certs` and pass --cert certs/NAME.crt --key certs/NAME.key"
            )
    channel = endpoint.open()
    secrets = SecretSource(
        password_stdin=o["password_stdin"], password_env=ADMIN_PASSWORD_ENV,
        prompt="admin password: ",
    )  # fmt: skip
    async with Api(channel) as api:
        # The login secret: the authenticator derived from the password (or the password of a
        # legacy account, as the bootstrap admin's is until a client upgrades it).
        secret = await login_secret(api, o["user"], secrets.account_password())
        try:
            login = await api.login(o["user"], secret, o["device_id"])
        except NotFound:
            # First use: the admin account has no device yet, so register one.
            login = await api.login(o["user"], secret, 0)
        if login.role != "admin":
            raise PermissionDenied(f"{o['user']} is not an admin account")
        try:
            return await work(api)
        finally:
            with contextlib.suppress(SecureChatError):
                await api.logout()


def _when(ms: int) -> str:
    from datetime import UTC, datetime

    return f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d %H:%M:%S} UTC"


@cli.command("clients")
@_api_options
def clients_command(**options: Any) -> None:
    """List the clients connected to the server (user/device, peer, certificate, since)."""

    async def work(api: Api) -> list[Any]:
        return await api.list_clients()

    clients = _run_api(options, work)
    if not clients:
        click.echo("no clients connected")
        return
    click.echo(f"{'DEVICE':<24} {'PEER':<24} {'CERTIFICATE':<20} {'SINCE':<24} SENT  NODE")
    for c in clients:
        device = f"{c.device.user}/{c.device.device_id}"
        click.echo(f"{device:<24} {c.peer:<24} {c.certificate_subject:<20} "
                   f"{_when(c.connected_since_ms):<24} {c.messages_sent:>4}  {c.node}")  # fmt: skip


@cli.command("kick")
@click.argument("target_user", metavar="USER")
@click.option("--reason", default="", help="Shown to the kicked user.")
@_api_options
def kick_command(target_user: str, reason: str, **options: Any) -> None:
    """End every stream of USER and revoke all their sessions."""

    async def work(api: Api) -> Any:
        return await api.kick_user(target_user, reason)

    response = _run_api(options, work)
    click.echo(f"kicked {target_user}: {response.streams_closed} stream(s) closed, "
               f"{response.sessions_revoked} session(s) revoked")  # fmt: skip


@cli.command("stats")
@_api_options
def stats_command(**options: Any) -> None:
    """Show server counters (uptime, streams, users, rooms, messages)."""

    async def work(api: Api) -> Any:
        return await api.get_stats()

    s = _run_api(options, work)
    rows = [("version", s.version), ("node", s.node), ("uptime_s", s.uptime_s),
            ("connected_streams", s.connected_streams), ("users", s.users), ("rooms", s.rooms),
            ("messages_accepted", s.messages_accepted), ("deliveries", s.deliveries)]  # fmt: skip
    for name, value in rows:
        click.echo(f"{name:<18} {value}")


@cli.command("invite")
@click.option("--days", type=click.IntRange(1, 90), default=7, show_default=True,
              help="how long the code stays valid")  # fmt: skip
@_api_options
def invite_command(days: int, **options: Any) -> None:
    """Create a one-use registration code (auth.registration = invite)."""

    async def work(api: Api) -> Any:
        return await api.create_invite(days * 86400)

    invite = _run_api(options, work)
    click.echo(invite.code)
    click.echo(f"valid until {_when(invite.expires_at_ms)}; it works once", err=True)


@cli.command("rooms")
@_api_options
def rooms_command(**options: Any) -> None:
    """List every room with its member count."""

    async def work(api: Api) -> list[Any]:
        return await api.list_rooms()

    rooms = _run_api(options, work)
    if not rooms:
        click.echo("no rooms")
        return
    click.echo(f"{'ROOM':<32} {'MEMBERS':>7}  PASSWORD")
    for r in rooms:
        click.echo(f"{r.name:<32} {r.member_count:>7}  {'yes' if r.protected else 'no'}")


if __name__ == "__main__":  # pragma: no cover
    main()
