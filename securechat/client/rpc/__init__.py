"""The client library: every securechat client talks to the server through these modules.

The chat client, the scriptable CLI, ``securechat-admin`` and the bench's load clients share:

- ``channel``: :class:`Endpoint` (server and certificate files, loaded and checked through
  ``securechat.pki``) and :func:`open_channel`, the one channel factory (mTLS, keepalive,
  receive limit).
- ``status``: :func:`translate`, the one translation of gRPC status and the ``securechat-error``
  / ``retry-after`` trailers into SecureChatError subclasses (and of refused sends).
- ``api``: :class:`Api`, typed unary calls with the one :meth:`Api.login`.
- ``link``: :class:`ChatLink`, the Chat stream kept open (resume, acks, reconnect).
- ``sender``: :class:`Sender`, the one send path (pipelined, matched by client message id,
  re-encrypting on ``stale_devices``), over the stream or :class:`UnaryOutlet`.
"""

from securechat.client.rpc.api import Api, LoginResult
from securechat.client.rpc.channel import Endpoint, check_server, open_channel, resolve_path
from securechat.client.rpc.link import ACK_EVERY_S, ROOM_ACK_EVERY_S, Backoff, ChatLink
from securechat.client.rpc.sender import Receipt, Seal, Sender, UnaryOutlet
from securechat.client.rpc.status import call, result_error, translate

__all__ = [
    "ACK_EVERY_S",
    "ROOM_ACK_EVERY_S",
    "Api",
    "Backoff",
    "ChatLink",
    "Endpoint",
    "LoginResult",
    "Receipt",
    "Seal",
    "Sender",
    "UnaryOutlet",
    "call",
    "check_server",
    "open_channel",
    "resolve_path",
    "result_error",
    "translate",
]
