"""`securechat`: the command-line entry point, global options and the one error dispatcher.

Every failure ends here: one line on stderr saying what happened and what to do, and the
error's exit code (see docs/client.md for the table); ``--debug`` adds the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from securechat.client import cli_account, cli_devices, cli_history, cli_messages, cli_rooms
from securechat.client.cli_common import CONFIG_KEY
from securechat.errors import IdentityChanged, SecureChatError

EXIT_USAGE = 2
EXIT_IO = 74
EXIT_INTERRUPTED = 130
CONFIG_HELP = "Config file [env SECURECHAT_CONFIG; $SECURECHAT_HOME/config.toml]."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--server", metavar="HOST:PORT", help="Server address [default: localhost:50051, "
              "or the profile's]; env SECURECHAT_SERVER.")  # fmt: skip
@click.option("--profile", default="default", show_default=True, envvar="SECURECHAT_PROFILE",
              help="Profile name (its own session, keys and settings).")  # fmt: skip
@click.option("--ca", metavar="FILE", help="CA certificate [env SECURECHAT_CA; ./certs/ca.crt].")
@click.option("--cert", metavar="FILE",
              help="Client certificate [env SECURECHAT_CERT; ./certs/client.crt].")  # fmt: skip
@click.option("--key", metavar="FILE",
              help="Client private key [env SECURECHAT_KEY; ./certs/client.key].")  # fmt: skip
@click.option("--password-stdin", is_flag=True,
              help="Read the account password from the first line of stdin.")  # fmt: skip
@click.option("--config", "config_file", metavar="FILE", help=CONFIG_HELP)
@click.option("--debug", is_flag=True, help="Show tracebacks and details on errors.")
@click.version_option(package_name="securechat", prog_name="securechat")
@click.pass_context
def cli(
    ctx: click.Context,
    server: str | None,
    profile: str,
    ca: str | None,
    cert: str | None,
    key: str | None,
    password_stdin: bool,
    config_file: str | None,
    debug: bool,
) -> None:
    """securechat: end-to-end encrypted chat over mutual TLS.

    Passwords are never taken from the command line: set SECURECHAT_PASSWORD (and
    SECURECHAT_ROOM_PASSWORD), use --password-stdin, or type them when asked.
    """
    from securechat.client.account import Options
    from securechat.client.config import config_path, load_client_config
    from securechat.client.passwords import SecretSource
    from securechat.client.profile import default_home

    path, required = config_path(config_file, default_home(), os.environ)
    config = load_client_config(path, required=required, profile=profile)
    ctx.meta[CONFIG_KEY] = config
    # flags > environment > config file > what the profile remembered > defaults
    ctx.obj = Options(
        server=server or config.server or None,
        profile=profile,
        ca=ca or config.ca or None,
        cert=cert or config.cert or None,
        key=key or config.key or None,
        debug=debug,
        secrets=SecretSource(password_stdin=password_stdin),
    )


for command in (
    *cli_account.COMMANDS,
    *cli_devices.COMMANDS,
    *cli_messages.COMMANDS,
    *cli_rooms.COMMANDS,
    *cli_history.COMMANDS,
):
    cli.add_command(command)


def _fail(message: str, code: int, debug: bool) -> int:
    from securechat.client.display import sanitize

    if debug:
        traceback.print_exc()
    # Error text may come from the server: never let it drive the terminal.
    click.echo(f"securechat: {sanitize(message, limit=None)}", err=True)
    return code


def dispatch(argv: list[str] | None = None) -> int:
    """Run the CLI and turn every outcome into an exit code (the one error dispatcher)."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("SECURECHAT_DEBUG") == "1"
    if not debug:
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # C-core logs would break the one line
    try:
        result = cli.main(args=args, prog_name="securechat", standalone_mode=False)
    except click.exceptions.Abort:
        return _fail("interrupted", EXIT_INTERRUPTED, debug)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED, debug)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except IdentityChanged as exc:
        from securechat.client.key_change import blocked_hint

        return _fail(blocked_hint(exc.user, exc.verified, "cli"), exc.exit_code, debug)
    except SecureChatError as exc:
        return _fail(exc.message, exc.exit_code, debug)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        return _fail(
            f"file or network error: {exc.strerror or exc}{where}: check the path and permissions",
            EXIT_IO,
            debug,
        )
    except Exception as exc:
        return _fail(
            f"unexpected error ({exc.__class__.__name__}): run again with --debug and report it",
            1,
            debug,
        )
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(dispatch())
