"""The reference: a bare grpc.aio fan-out server over the same mTLS, nothing else.

One bidirectional method ``/bench.Fanout/Chat`` carrying raw bytes (generic handlers, no proto).
Every message a stream sends is written to every other open stream, one message per write,
through one writer task per stream. No auth, no storage, no batching. A new stream first gets a
one-byte hello so the client knows it is registered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc

SERVICE = "bench.Fanout"
METHOD = f"/{SERVICE}/Chat"
HELLO = b"\x00"


class Fanout:
    def __init__(self) -> None:
        self.queues: dict[int, asyncio.Queue[bytes]] = {}
        self._next = 0

    async def chat(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
        self._next += 1
        key = self._next
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.queues[key] = queue
        queue.put_nowait(HELLO)
        reader = asyncio.create_task(self._read(key, requests, queue))
        try:
            while True:
                message = await queue.get()
                if not message:  # end marker from the reader
                    break
                await context.write(message)
        finally:
            reader.cancel()
            self.queues.pop(key, None)

    async def _read(
        self, key: int, requests: AsyncIterator[bytes], own: asyncio.Queue[bytes]
    ) -> None:
        try:
            async for message in requests:
                for other, queue in self.queues.items():
                    if other != key:
                        queue.put_nowait(message)
        except Exception:  # noqa: S110 - a broken stream just ends
            pass
        finally:
            own.put_nowait(b"")


def server_credentials(certs_dir: Path) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [((certs_dir / "server.key").read_bytes(), (certs_dir / "server.crt").read_bytes())],
        root_certificates=(certs_dir / "ca.crt").read_bytes(),
        require_client_auth=True,
    )


async def serve(certs_dir: Path, port: int, options: Sequence[tuple[str, int]] = ()) -> None:
    fanout = Fanout()
    handler = grpc.stream_stream_rpc_method_handler(fanout.chat)
    server = grpc.aio.server(options=[("grpc.http2.bdp_probe", 0), *options])
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Chat": handler}),)
    )
    bound = server.add_secure_port(f"127.0.0.1:{port}", server_credentials(certs_dir))
    await server.start()
    print(f"reference listening on 127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--certs-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--grpc-option",
        action="append",
        default=[],
        metavar="NAME=INT",
        help="an extra integer grpc server option, for experiments (scripts/idle_rss.py)",
    )
    args = parser.parse_args(argv)
    options = [
        (name, int(value)) for name, _, value in (o.partition("=") for o in args.grpc_option)
    ]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.certs_dir, args.port, options))
    sys.exit(0)


if __name__ == "__main__":
    main()
