"""The HTTP endpoints, as an app factory: nothing runs at import, everything is passed in.

* ``/healthz``: 200 while this server answers; the body lists each component's state.
* ``/ready``: 200 when `AgentHealth.readiness` says ready, else 503 with the reasons.
* ``/metrics``: the Prometheus text format (0.0.4) of ``registry``.
* ``/status``: `status_document` as JSON.

The handlers are ``async`` on purpose: they run on the event loop that also feeds
`AgentHealth`, so a request never reads it while a report is being applied.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from kk_health.book import AgentHealth, AgentIdentity
from kk_health.status import status_document

__all__ = ["create_app"]


def create_app(
    health: AgentHealth,
    identity: AgentIdentity,
    registry: CollectorRegistry,
    *,
    clock: Callable[[], float],
) -> FastAPI:
    app = FastAPI(
        title="KillKrill agent health",
        version=identity.version,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        now = clock()
        return {
            "status": "ok",
            "components": {view.name: str(view.state) for view in health.components(now=now)},
        }

    @app.get("/ready")
    async def ready() -> JSONResponse:
        readiness = health.readiness(now=clock())
        return JSONResponse(
            {"ready": readiness.ready, "reasons": list(readiness.reasons)},
            status_code=200 if readiness.ready else 503,
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        # Always the classic text format (0.0.4; names are checked to fit it): it allows a
        # gauge X next to a counter X_total (the shipper has both), which OpenMetrics
        # would reject as one family.
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    @app.get("/status")
    async def status() -> dict[str, object]:
        return status_document(health, identity, now=clock())

    return app
