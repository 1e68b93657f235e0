"""The `securechat-server` entry point: flags and config, signals, the console; it runs one
node (securechat/node.py, the composition root) or, with --workers, a supervisor of several."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from securechat.errors import SecureChatError

log = logging.getLogger("securechat.app")


def log_file(config: Any, console: bool) -> Path | None:
    """Where logs go: ``log.file``, else a file in the data folder while the console has the
    terminal (so what the operator types is not interleaved with log lines), else stderr."""
    if config.log.file:
        return Path(config.log.file)
    if console and sys.stderr.isatty():
        return Path(config.server.data_dir) / "server.log"
    return None


def move_stderr(path: Path) -> None:
    """Point file descriptor 2 at the log file too: gRPC's C core writes its own messages
    (handshake failures, ...) straight to it, past Python's logging."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(descriptor, 2)
    os.close(descriptor)


async def serve(config: Any, console: bool | None = None, logs: Path | None = None) -> int:
    from securechat.node import Node

    node = Node(config)
    await node.start()
    from securechat.ops.heap import settle

    log.debug("%d objects frozen out of garbage collection", settle())
    loop = asyncio.get_running_loop()
    stopping: asyncio.Task[None] | None = None

    def request_stop(signame: str) -> None:
        nonlocal stopping
        if stopping is None:
            log.info("received %s: shutting down gracefully", signame)
            stopping = asyncio.create_task(node.stop())
        elif node.draining:
            log.info("received %s again: ending the drain period now", signame)
            node.end_drain()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop, sig.name)
    # Announce only once a signal would shut down gracefully.
    host = config.server.host
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"securechat-server listening on {shown}:{node.port}", err=False)
    sys.stdout.flush()
    # The server console when stdin is a terminal, or forced with --console.
    console_task: asyncio.Task[None] | None = None
    if console if console is not None else sys.stdin.isatty():
        from securechat.ops.console import run_console

        if logs is not None:
            click.echo(f"logs go to {logs} while the console has this terminal")

        console_task = asyncio.create_task(
            run_console(node.view, lambda: request_stop("/shutdown")), name="console"
        )
    await node.wait()
    if console_task is not None:
        console_task.cancel()
    from securechat.ops.logsetup import flush_suppressed

    flush_suppressed()
    return 0


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML config file.")
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 50051; 0 picks a free one).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Server data.")
@click.option("--certs-dir", type=click.Path(path_type=Path), default=None, help="ca.crt, server.*")
@click.option("--db", default=None, help="Database: a SQLite path or postgresql://...")
@click.option("--bus", default=None, help="Bus: memory: (default) or redis://HOST:PORT")
@click.option("--status-port", type=int, default=None, help="Status page port (0 disables).")
@click.option("--log-format", type=click.Choice(["plain", "json"]), default=None)
@click.option("--log-level", default=None)
@click.option(
    "--console/--no-console",
    default=None,
    help="Read operator commands (/clients, /kick, ...) from stdin [default: when it is a TTY].",
)
# --workers N forks N processes sharing the port (securechat/supervisor.py).
@click.option("--workers", type=int, default=None, help="Processes sharing the port (default 1).")
def cli(
    config_file: Path | None,
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    certs_dir: Path | None,
    db: str | None,
    bus: str | None,
    status_port: int | None,
    log_format: str | None,
    log_level: str | None,
    console: bool | None,
    workers: int | None,
) -> None:
    """Run the securechat server (gRPC over mutual TLS)."""
    from securechat.config import load_config
    from securechat.ops.logsetup import configure_logging

    overrides = {
        "server.host": host,
        "server.port": port,
        "server.data_dir": data_dir,
        "server.certs_dir": certs_dir,
        "storage.db": db,
        "bus.url": bus,
        "status.port": status_port,
        "log.format": log_format,
        "log.level": log_level.upper() if log_level else None,
        "server.workers": workers,
    }
    config = load_config(config_file, overrides)
    console_on = config.server.workers == 1 and (
        console if console is not None else sys.stdin.isatty()
    )
    logs = log_file(config, console_on)
    if logs is not None:
        logs.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    configure_logging(config.log.format, config.log.level, file=logs,
                      repeat_limit_per_s=config.log.repeat_limit_per_s)  # fmt: skip
    if logs is not None and console_on:
        move_stderr(logs)
    if config.server.workers > 1:  # scale-out: fork before any grpc object exists
        from securechat.supervisor import supervise

        sys.exit(supervise(config, lambda worker: asyncio.run(serve(worker, False))))
    moved = logs if logs is not None and console_on and not config.log.file else None
    sys.exit(asyncio.run(serve(config, console, moved)))


def main() -> None:
    """Entry point: one clear line and a non-zero exit for every set-up error."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(130)
    except SecureChatError as exc:
        click.echo(f"securechat-server: error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
