"""A WebClient that keeps its connections: one pooled httpx client under slack_sdk's own request handling."""

from __future__ import annotations

import http.client
import io
import urllib.error
import urllib.request
from typing import Any, cast

import httpx
from slack_sdk import WebClient


class KeepAliveWebClient(WebClient):
    """slack_sdk's WebClient opens a new connection (and, against Slack, a new TLS session) for every call; this
    one sends through one pooled httpx client, so the worker's calls reuse connections. Everything else, retries
    and error handling included, is slack_sdk's: a status >= 400 is raised as urllib's HTTPError, as urlopen does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        self._http = httpx.Client(timeout=self.timeout, verify=self.ssl or True, limits=limits)

    def close(self) -> None:
        """Release pooled connections."""
        self._http.close()

    def _perform_urllib_http_request_internal(self, url: str, req: urllib.request.Request) -> dict[str, Any]:
        if self.proxy is not None or not url.lower().startswith("http"):
            return super()._perform_urllib_http_request_internal(url, req)
        try:
            resp = self._http.request(
                req.get_method(), url, headers=dict(req.header_items()), content=cast(bytes | None, req.data)
            )
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"Slack did not answer in {self.timeout} s") from exc
        except httpx.TransportError as exc:
            raise urllib.error.URLError(str(exc)) from exc
        headers = http.client.HTTPMessage()
        for name, value in resp.headers.multi_items():
            headers[name] = value
        if resp.status_code >= 400:
            raise urllib.error.HTTPError(url, resp.status_code, resp.reason_phrase, headers, io.BytesIO(resp.content))
        return {"status": resp.status_code, "headers": headers, "body": resp.content.decode(resp.encoding or "utf-8")}
