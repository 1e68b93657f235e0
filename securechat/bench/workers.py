"""Load-generator processes: spawned children that run one role and obey commands over a pipe.

The orchestrator stays synchronous: ``Workers.call("run", ...)`` sends a command to every child
and waits for every answer. A child runs an asyncio loop; its clients keep streaming while it
waits for the next command.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import traceback
from collections.abc import Awaitable, Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from securechat.errors import SecureChatError

Command = tuple[str, dict[str, Any]]
COMMAND_TIMEOUT_S = 600.0


class WorkerFailed(SecureChatError):
    """A load-generator process failed; the message carries its traceback."""


async def gather_limited(
    factories: Sequence[Callable[[], Awaitable[Any]]], limit: int
) -> list[Any]:
    """Run coroutine factories with at most ``limit`` in flight; results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(factory: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            return await factory()

    return list(await asyncio.gather(*(one(f) for f in factories)))


def _child(conn: Connection, role_name: str, spec: dict[str, Any]) -> None:
    from securechat.bench import roles
    from securechat.bench.procs import raise_nofile_limit

    raise_nofile_limit()
    asyncio.run(_serve(conn, lambda: roles.ROLES[role_name](spec)))


async def _serve(conn: Connection, make_role: Callable[[], Any]) -> None:
    loop = asyncio.get_running_loop()
    role = make_role()  # inside the loop: grpc.aio channels bind to the running loop
    try:
        while True:
            name, params = await loop.run_in_executor(None, conn.recv)
            if name == "exit":
                break
            try:
                result = await getattr(role, f"cmd_{name}")(**params)
                conn.send(("ok", result))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    finally:
        try:
            await role.close()
        finally:
            conn.send(("ok", {}))
            conn.close()


class Workers:
    """A set of child processes of one role, each with its own spec."""

    def __init__(self, role: str, specs: Sequence[dict[str, Any]]) -> None:
        context = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[multiprocessing.process.BaseProcess] = []
        for index, spec in enumerate(specs):
            parent, child = context.Pipe()
            proc = context.Process(
                target=_child, args=(child, role, spec), name=f"bench-{role}-{index}", daemon=True
            )
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def __len__(self) -> int:
        return len(self.conns)

    def send(
        self, name: str, params: dict[str, Any] | Sequence[dict[str, Any]] | None = None
    ) -> None:
        for index, conn in enumerate(self.conns):
            each = params[index] if isinstance(params, Sequence) else (params or {})
            conn.send((name, each))

    def collect(self) -> list[dict[str, Any]]:
        results = []
        for conn, proc in zip(self.conns, self.procs, strict=True):
            if not conn.poll(COMMAND_TIMEOUT_S):
                raise WorkerFailed(f"load process {proc.name} did not answer in time")
            status, value = conn.recv()
            if status != "ok":
                raise WorkerFailed(f"load process {proc.name} failed:\n{value}")
            results.append(value)
        return results

    def call(
        self, name: str, params: dict[str, Any] | Sequence[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        self.send(name, params)
        return self.collect()

    def close(self) -> None:
        for conn, proc in zip(self.conns, self.procs, strict=True):
            try:
                conn.send(("exit", {}))
                if conn.poll(30):
                    conn.recv()
            except (OSError, EOFError):
                pass
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join()
            conn.close()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """Deal items round-robin into ``parts`` non-empty lists (fewer when items are few)."""
    parts = max(1, min(parts, len(items)))
    return [list(items[i::parts]) for i in range(parts)]
