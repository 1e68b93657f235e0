"""The chat.* settings of batches, stream bytes, mailbox quotas and retried sends: each bad value
stops the server with an error naming its key."""

from __future__ import annotations

import pytest

from securechat.client.rpc.channel import MAX_RECEIVE_BYTES
from securechat.config import CLIENT_RECEIVE_BYTES, load_config
from securechat.errors import ConfigError

KiB, MiB = 1024, 1024 * 1024


def chat(**values: object) -> None:
    load_config(None, {f"chat.{key}": value for key, value in values.items()}, env={})


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"max_batch_bytes": 64 * KiB}, "chat.max_batch_bytes"),  # a max-size message must fit
        ({"max_batch_bytes": 4 * MiB}, "chat.max_batch_bytes"),  # over the client's limit
        ({"max_message_bytes": 1 * MiB, "max_batch_bytes": 1 * MiB}, "chat.max_batch_bytes"),
        ({"stream_queue_max_bytes": 1 * MiB + 1 * MiB - 1}, "chat.stream_queue_max_bytes"),
        ({"mailbox_max_entries": -1}, "chat.mailbox_max_entries"),
        ({"mailbox_sender_max_bytes": -1}, "chat.mailbox_sender_max_bytes"),
        ({"mailbox_max_bytes": 1000}, "chat.mailbox_max_bytes"),  # a max-size message must fit
        ({"mailbox_sender_max_entries": 30_000}, "chat.mailbox_sender_max_entries"),
        ({"mailbox_max_bytes": 8 * MiB}, "chat.mailbox_sender_max_bytes"),  # 16 MiB > 8 MiB
        ({"dedup_window_s": -1}, "chat.dedup_window_s"),
        ({"dedup_max_per_device": 0}, "chat.dedup_max_per_device"),
    ],
)
def test_bad_values_name_their_key(values: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=f"config {key}: "):
        chat(**values)


def test_zero_quotas_mean_no_limit_and_the_edges_are_accepted() -> None:
    chat(mailbox_max_entries=0, mailbox_max_bytes=0, mailbox_sender_max_entries=0,
         mailbox_sender_max_bytes=0, dedup_window_s=0)  # fmt: skip
    chat(mailbox_max_entries=0, mailbox_sender_max_entries=50_000)  # no device limit: any share
    chat(max_batch_bytes=64 * KiB + 4096, stream_queue_max_bytes=2 * (64 * KiB + 4096))
    chat(max_batch_bytes=4 * MiB - 64 * KiB, stream_queue_max_bytes=8 * MiB)


def test_the_batch_bound_is_checked_against_the_clients_receive_limit() -> None:
    assert CLIENT_RECEIVE_BYTES == MAX_RECEIVE_BYTES
