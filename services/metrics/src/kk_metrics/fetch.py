"""HTTP(S) GET of a source into a file, with the source's token and TLS (the IO adapter).

The body is streamed to a scratch file, never held whole in memory, and cut off at
``max_bytes`` (after decompression). Every failure becomes a `ScrapeError` here, at the
seam, with a reason that names the kind of failure and a message that says what to check:

===================  ========================================================
reason               meaning
===================  ========================================================
``connect``          nothing listens there, or the address is unreachable
``tls``              the certificate was not accepted (or ours was refused)
``timeout``          no complete answer within the source's timeout (asyncio side)
``http_<status>``    an answer other than 200; 401/403 name the token and RBAC
``too_large``        the body was longer than ``metrics.max_scrape_size``
``token``            the bearer token file cannot be read
``transport``        any other transport error
===================  ========================================================

The bearer token is re-read whenever its file changes: projected service-account tokens are
rotated by the kubelet (an atomic symlink swap), and a token kept from the start would
expire after an hour.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import httpx

from kk_common.config import MetricSourceConfig
from kk_metrics.errors import ScrapeError

__all__ = ["SourceFetcher", "TokenFile", "check_size"]

_ACCEPT = "text/plain;version=0.0.4;q=0.9,application/json;q=0.8,*/*;q=0.1"
_CHUNK = 256 * 1024


class TokenFile:
    """A bearer token file, read again when its identity, size or mtime changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._seen: tuple[int, int, int, int] | None = None
        self._token = ""
        self.reloads = 0

    def token(self) -> str:
        try:
            st = os.stat(self.path)
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            if key != self._seen:
                self._token = Path(self.path).read_text(encoding="utf-8").strip()
                self._seen = key
                self.reloads += 1
        except OSError as exc:
            raise ScrapeError(
                "token", f"cannot read bearer_token_file {self.path}: {exc.strerror}"
            ) from None
        return self._token


def _tls_context(source: MetricSourceConfig) -> ssl.SSLContext | bool:
    if source.insecure_skip_verify:
        return False
    context = ssl.create_default_context(cafile=source.ca_file)
    if source.cert_file and source.key_file:
        context.load_cert_chain(source.cert_file, source.key_file)
    return context


class SourceFetcher:
    """Fetches one source's URL; one connection pool per source, kept between scrapes."""

    def __init__(self, source: MetricSourceConfig, *, max_bytes: int) -> None:
        self.source = source
        self.max_bytes = max_bytes
        self.token_file = TokenFile(source.bearer_token_file) if source.bearer_token_file else None
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            try:
                verify = _tls_context(self.source) if self.source.url.startswith("https") else True
            except (OSError, ssl.SSLError) as exc:
                raise ScrapeError(
                    "tls", f"cannot load the TLS files of source {self.source.name!r}: {exc}"
                ) from None
            # The caller's deadline bounds the scrape; httpx's own timeout is only a backstop.
            self._client = httpx.AsyncClient(verify=verify, timeout=httpx.Timeout(300.0))
        return self._client

    async def fetch_to(self, destination: Path) -> int:
        """GET the source into ``destination``; returns the number of bytes written."""
        headers = {"Accept": _ACCEPT, "User-Agent": "killkrill-agent/metrics"}
        if self.token_file is not None:
            headers["Authorization"] = f"Bearer {self.token_file.token()}"
        name, url = self.source.name, self.source.url
        try:
            async with self._http().stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    raise _status_error(response.status_code, name)
                written = 0
                with destination.open("wb") as out:
                    async for chunk in response.aiter_bytes(_CHUNK):
                        written += len(chunk)
                        check_size(written, self.max_bytes, url)
                        out.write(chunk)
                return written
        except httpx.ConnectError as exc:
            if (
                isinstance(exc.__cause__, ssl.SSLError)
                or "SSL" in str(exc)
                or "certificate" in str(exc)
            ):
                raise ScrapeError(
                    "tls",
                    f"TLS with {url} failed: {exc}; set the source's ca_file to the CA that "
                    "signed its certificate (docs/configuration.md, 'The kubelet's certificate')",
                ) from None
            raise ScrapeError("connect", f"cannot connect to {url}: {exc}", absent=True) from None
        except httpx.TransportError as exc:
            raise ScrapeError("transport", f"{url}: {type(exc).__name__}: {exc}") from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def check_size(written: int, max_bytes: int, what: str) -> None:
    """Refuse an answer past ``metrics.max_scrape_size`` as soon as it gets there."""
    if written > max_bytes:
        raise ScrapeError(
            "too_large",
            f"the answer of {what} is larger than metrics.max_scrape_size ({max_bytes:,} bytes)",
        )


def _status_error(status: int, name: str) -> ScrapeError:
    if status in (401, 403):
        return ScrapeError(
            f"http_{status}",
            f"source {name!r} answered {status}: check its bearer_token_file and that the "
            "service account may get nodes/metrics, nodes/stats and nodes/proxy",
        )
    return ScrapeError(f"http_{status}", f"source {name!r} answered {status}", absent=status == 404)
