"""Make the golden data of tests/client/test_upgrade.py with the code from BEFORE accounts owned
devices (commit 243af0d): a server database and two client profiles that talked to each other,
with one message still waiting in bob's mailbox.

Run it against that code, never against the current one::

    git archive 243af0d | tar -x -C /tmp/old
    cp tests/client/make_before_accounts.py /tmp/old/
    cd /tmp/old && PYTHONPATH=/tmp/old:/tmp/old/generated \\
        SECURECHAT_KDF_PROFILE=test python make_before_accounts.py OUT_DIR

It writes ``OUT_DIR/server.db``, ``OUT_DIR/alice`` and ``OUT_DIR/bob`` (profile folders: settings,
session, keystore and its sidecar) and ``OUT_DIR/golden.json`` (passwords and messages).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

PASSWORDS = {"alice": "alice before accounts", "bob": "bob before accounts"}
MESSAGES = {
    "read": "read before the upgrade",
    "reply": "a reply",
    "pending": "waiting in the mailbox",
}


async def main(out: Path) -> None:
    from securechat.client import account
    from securechat.client.account import Options
    from securechat.client.events import Target
    from securechat.client.messenger import Messenger
    from securechat.client.passwords import SecretSource
    from securechat.client.rpc.sender import Sender, UnaryOutlet
    from securechat.config import load_config
    from securechat.node import Node
    from securechat.pki import make_dev_pki

    tmp = Path(tempfile.mkdtemp())
    pki = make_dev_pki(tmp / "pki", clients=("client",))
    overrides = {
        "server.port": 0, "server.data_dir": tmp / "data", "server.certs_dir": pki.directory,
        "auth.bcrypt_cost": 4, "status.port": 0,
    }  # fmt: skip
    node = Node(load_config(None, overrides, env={}))
    await node.start()
    paths = pki.client("client")

    def options(user: str) -> Options:
        os.environ["SECURECHAT_HOME"] = str(tmp / user)
        return Options(
            server=f"localhost:{node.port}", ca=str(pki.ca_cert), cert=str(paths.cert),
            key=str(paths.key), secrets=SecretSource(env={"SECURECHAT_PASSWORD": PASSWORDS[user]}),
        )  # fmt: skip

    async def send(user: str, to: str, text: str) -> None:
        client = account.connect(options(user), lock=True)
        await account.resume(client, client_secrets(user))
        assert client.vault is not None
        messenger = Messenger(client.api, client.vault)
        sender = Sender(UnaryOutlet(client.api), messenger.book)
        await (await messenger.submit(sender, Target.user(to), text))
        await client.close()

    async def read(user: str) -> list[str]:
        client = account.connect(options(user), lock=True)
        await account.resume(client, client_secrets(user))
        assert client.vault is not None
        messenger = Messenger(client.api, client.vault)
        texts = []
        deliveries = await client.api.fetch(client.vault.state.last_ack, 100)
        for delivery in deliveries:
            texts.extend(e.text for e in messenger.open(delivery) if hasattr(e, "text"))
        client.vault.state.last_ack = max(d.seq for d in deliveries)
        client.vault.save()
        await client.api.ack(client.vault.state.last_ack)
        await client.close()
        return texts

    def client_secrets(user: str) -> SecretSource:
        return SecretSource(env={"SECURECHAT_PASSWORD": PASSWORDS[user]})

    for user in ("alice", "bob"):
        client = account.connect(options(user), lock=True)
        await account.register(client, user, PASSWORDS[user])
        await client.close()
    await send("alice", "bob", MESSAGES["read"])
    assert await read("bob") == [MESSAGES["read"]]
    await send("bob", "alice", MESSAGES["reply"])
    assert await read("alice") == [MESSAGES["reply"]]
    await send("alice", "bob", MESSAGES["pending"])  # bob does not read this one
    await node.stop(grace=0.2)

    out.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(tmp / "data" / "securechat.db") as live:
        live.execute("VACUUM INTO ?", (str(out / "server.db"),))
    live.close()
    for user in ("alice", "bob"):
        profile = tmp / user / "profiles" / "default"
        target = out / user
        target.mkdir(exist_ok=True)
        for name in ("settings.json", "session.json", "keystore.bin", "keystore.bin.generation"):
            shutil.copyfile(profile / name, target / name)
    golden = {"passwords": PASSWORDS, "messages": MESSAGES, "made_by": "243af0d"}
    (out / "golden.json").write_text(json.dumps(golden, indent=2) + "\n")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
