"""The gRPC health service (``grpc.health.v1.Health``): Check, Watch and List, behind the same
revocation check as every other service.

grpcio-health-checking's asyncio servicer declares ``List`` but leaves it UNIMPLEMENTED; this
subclass answers it from the statuses it was given. A revoked client certificate gets
``UNAUTHENTICATED`` + ``certificate_revoked`` here too, so a revoked machine cannot even probe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

from securechat.domain.model import PeerCertificate
from securechat.errors import RevokedCertificate
from securechat.transport.errors import abort_with
from securechat.transport.peer import peer_certificate

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class GuardedHealth(HealthServicer):  # type: ignore[misc]
    """Health with ``List`` and the revocation check; statuses as the base class keeps them."""

    def __init__(self, is_revoked: Callable[[PeerCertificate], bool] | None = None) -> None:
        super().__init__()
        self.is_revoked = is_revoked
        self.statuses: dict[str, Any] = {"": SERVING}

    async def _refuse_revoked(self, context: grpc.aio.ServicerContext) -> None:
        if self.is_revoked is not None and self.is_revoked(peer_certificate(context)):
            await abort_with(context, RevokedCertificate())

    async def _set(self, service: str, status: Any) -> None:
        await super()._set(service, status)
        self.statuses[service] = status

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> Any:
        await self._refuse_revoked(context)
        return await super().Check(request, context)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> None:
        await self._refuse_revoked(context)
        await super().Watch(request, context)

    async def List(
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthListResponse:
        await self._refuse_revoked(context)
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in sorted(self.statuses.items())
            }
        )

    def serving(self) -> bool:
        """False once the node began to drain (every status NOT_SERVING)."""
        return bool(self.statuses.get("") == SERVING)
