"""Who is online across nodes, kept in Redis: one hash per node, one per user, node heartbeats.

Keys (``P`` is the configured prefix; all in one Redis database, not Redis Cluster)::

    P:nodes          sorted set  node -> last heartbeat (Redis server time, ms)
    P:node:<node>    hash        "<user>\\x1f<device>" -> connected since (ms)
    P:user:<user>    hash        "<node>\\x1f<device>" -> node

A node is alive while its heartbeat is younger than ``ttl_ms``. Entries of dead nodes are ignored
at once and removed by the next heartbeat of any live node, so a SIGKILLed node's devices vanish
from ``online()`` within the TTL. Every script reads Redis's own clock (no skew between hosts).
"""

from __future__ import annotations

from typing import Any

from securechat.domain.events import OnlineDevice
from securechat.domain.model import DeviceRef

SEP = "\x1f"

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_LIVE_DEVICES = """
local function live_devices(nodes_key, user_key, ttl)
  local live = 0
  local fields = redis.call('HGETALL', user_key)
  for i = 1, #fields, 2 do
    local score = redis.call('ZSCORE', nodes_key, fields[i + 1])
    if score and tonumber(score) >= now - ttl then
      live = live + 1
    else
      redis.call('HDEL', user_key, fields[i])
    end
  end
  return live
end
"""

# KEYS: nodes, node hash, user hash. ARGV: node, node field, user field, since, ttl.
MARK_ONLINE = (
    _NOW
    + _LIVE_DEVICES
    + """
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[1])
if live_devices(KEYS[1], KEYS[3], tonumber(ARGV[5])) == 1 then return 1 end
return 0
"""
)

# KEYS: nodes, node hash, user hash. ARGV: node field, user field, ttl.
MARK_OFFLINE = (
    _NOW
    + _LIVE_DEVICES
    + """
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[2])
if live_devices(KEYS[1], KEYS[3], tonumber(ARGV[3])) == 0 then return 1 end
return 0
"""
)

_FORGET_NODE = """
local function forget_node(prefix, node)
  local node_key = prefix .. ':node:' .. node
  local fields = redis.call('HKEYS', node_key)
  for _, f in ipairs(fields) do
    local sep = string.find(f, '\\31', 1, true)
    local user = string.sub(f, 1, sep - 1)
    local device = string.sub(f, sep + 1)
    redis.call('HDEL', prefix .. ':user:' .. user, node .. '\\31' .. device)
  end
  redis.call('DEL', node_key)
end
"""

# KEYS: nodes. ARGV: node, prefix, ttl. Refreshes this node; reaps the dead ones.
HEARTBEAT = (
    _NOW
    + _FORGET_NODE
    + """
redis.call('ZADD', KEYS[1], now, ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[3])))
for _, node in ipairs(dead) do
  redis.call('ZREM', KEYS[1], node)
  forget_node(ARGV[2], node)
end
return #dead
"""
)

# KEYS: nodes. ARGV: node, prefix, then (user, device, since) triples. Replaces everything
# this node had registered (after a reconnect: Redis may have restarted or reaped us).
REGISTER_ALL = (
    _NOW
    + _FORGET_NODE
    + """
forget_node(ARGV[2], ARGV[1])
local node_key = ARGV[2] .. ':node:' .. ARGV[1]
for i = 3, #ARGV, 3 do
  redis.call('HSET', node_key, ARGV[i] .. '\\31' .. ARGV[i + 1], ARGV[i + 2])
  redis.call('HSET', ARGV[2] .. ':user:' .. ARGV[i], ARGV[1] .. '\\31' .. ARGV[i + 1], ARGV[1])
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
return 1
"""
)

# KEYS: nodes. ARGV: node, prefix. A clean shutdown: forget this node now.
LEAVE = (
    _FORGET_NODE
    + """
forget_node(ARGV[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""
)

# KEYS: nodes. ARGV: prefix, ttl. Returns [node, field, since, node, field, since, ...].
ONLINE = (
    _NOW
    + """
local out = {}
local nodes = redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[2]), '+inf')
for _, node in ipairs(nodes) do
  local fields = redis.call('HGETALL', ARGV[1] .. ':node:' .. node)
  for i = 1, #fields, 2 do
    out[#out + 1] = node
    out[#out + 1] = fields[i]
    out[#out + 1] = fields[i + 1]
  end
end
return out
"""
)


class PresenceKeys:
    """Key and field names for one prefix and node."""

    def __init__(self, prefix: str, node: str) -> None:
        self.prefix = prefix
        self.node = node
        self.nodes = f"{prefix}:nodes"
        self.node_hash = f"{prefix}:node:{node}"

    def user_hash(self, user: str) -> str:
        return f"{self.prefix}:user:{user}"

    @staticmethod
    def node_field(device: DeviceRef) -> str:
        return f"{device.user}{SEP}{device.device_id}"

    def user_field(self, device: DeviceRef) -> str:
        return f"{self.node}{SEP}{device.device_id}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_online(flat: list[Any]) -> list[OnlineDevice]:
    """Decode the ONLINE script's flat reply."""
    found: list[OnlineDevice] = []
    for i in range(0, len(flat) - 2, 3):
        node, field, since = _text(flat[i]), _text(flat[i + 1]), _text(flat[i + 2])
        user, _, device = field.rpartition(SEP)
        found.append(OnlineDevice(DeviceRef(user, int(device)), node, int(since)))
    found.sort(key=lambda o: (o.device.user, o.device.device_id, o.node))
    return found
