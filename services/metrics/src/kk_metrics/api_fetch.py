"""IO adapter: GET one path of the API server through the service's Kubernetes connection.

The metrics API (``metrics.k8s.io``) is served by the API server, so it is read with the
same client, credentials and CA as this node's pods and the object metrics
(`kk_common.k8s.connect.api_client`: in-cluster, else $KUBECONFIG), not with settings of its
own. The ``kubernetes`` client is synchronous: the call runs on a worker thread, bounded by
the source's timeout. The body is streamed to a file with the same size limit as an HTTP
source, and errors become a `ScrapeError` with the reasons the object metrics use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from kk_common.k8s.connect import KubernetesApiUnavailable
from kk_metrics.cluster.api import error_reason
from kk_metrics.errors import ScrapeError
from kk_metrics.fetch import check_size

__all__ = ["ApiFetcher"]

_CHUNK = 256 * 1024


class ApiFetcher:
    """Fetches ``path`` from the API server that ``connect`` returns a client for."""

    def __init__(
        self,
        connect: Callable[[], Any],
        path: str,
        *,
        name: str,
        max_bytes: int,
        timeout_s: float,
    ) -> None:
        self.connect = connect
        self.path = path
        self.name = name
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def fetch_to(self, destination: Path) -> int:
        """GET the path into ``destination``; returns the number of bytes written."""
        return await asyncio.to_thread(self._fetch, destination)

    async def close(self) -> None:
        """Nothing to close: the connection is the service's."""

    def _fetch(self, destination: Path) -> int:
        try:
            api = self.connect()
        except KubernetesApiUnavailable as exc:
            raise ScrapeError("no_api", f"source {self.name!r}: {exc}") from None
        try:
            # The generated API methods' two steps: the request with the client's auth
            # (BearerToken: the rotating service-account token, or the kubeconfig's), then
            # the call, whose body is not read yet.
            request = api.param_serialize(
                "GET",
                self.path,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            answer = api.call_api(*request, _request_timeout=self.timeout_s)
            if not 200 <= answer.status <= 299:
                answer.read()
                raise ApiException.from_response(http_resp=answer, body=None, data=None)
            response = answer.response
            try:
                return self._write(response, destination)
            finally:
                response.release_conn()
        except ScrapeError:
            raise
        except ApiException as exc:
            if exc.status in (401, 403):
                raise ScrapeError(
                    f"http_{exc.status}",
                    f"the API server answered {exc.status} for {self.path}: the service "
                    "account needs get/list on metrics.k8s.io nodes and pods "
                    "(docs/configuration.md, metrics.metrics_api)",
                ) from None
            reason = error_reason(exc)
            raise ScrapeError(
                reason, f"{self.path}: {exc.reason}", absent=exc.status == 404
            ) from None
        except Exception as exc:  # what the client raises: translated at this seam
            reason = error_reason(exc)
            raise ScrapeError(reason, f"{self.path}: {type(exc).__name__}: {exc}") from None

    def _write(self, response: Any, destination: Path) -> int:
        written = 0
        with destination.open("wb") as out:
            for chunk in response.stream(_CHUNK):
                written += len(chunk)
                check_size(written, self.max_bytes, self.path)
                out.write(chunk)
        return written
