"""Linear adapter: GraphQL over httpx and error mapping for the outbox (webhooks: bot/linear/webhook.py).

Exceptions (the outbox retries only ``retryable`` ones, waiting ``retry_after`` when given)::

    LinearError                  base: .code, .retryable, .retry_after, .status
     +-- LinearRateLimited       RATELIMITED (Linear answers HTTP 400) or HTTP 429; retryable
     +-- LinearUnavailable       5xx, timeouts, connection errors, Linear internal errors; retryable
     +-- LinearInvalid           bad input, authentication, forbidden; not retryable
          +-- LinearNotFound     "Entity not found" (issue deleted, wrong identifier)
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

import httpx

log = logging.getLogger(__name__)

API_URL = "https://api.linear.app/graphql"
_PAGE = 100  # issues/labels per page: well under Linear's 10,000-point single-query complexity cap


def _load_documents() -> dict[str, str]:
    """Read bot/linear/graphql/*.graphql once, so every document we send is a file a test can validate."""
    folder = resources.files("bot.linear").joinpath("graphql")
    docs = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".graphql"):
            docs[entry.name.removesuffix(".graphql")] = entry.read_text(encoding="utf-8")
    return dict(sorted(docs.items()))


GRAPHQL_DOCUMENTS: dict[str, str] = _load_documents()


class LinearError(Exception):
    """Any failure talking to Linear; the outbox decides on ``retryable`` and ``retry_after``."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: str = "UNKNOWN",
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after
        self.status = status


class LinearRateLimited(LinearError):
    """Linear's rate limit (``RATELIMITED``); wait ``retry_after`` seconds before the next call."""

    retryable = True


class LinearUnavailable(LinearError):
    """Linear could not be reached or failed on its side; safe to retry later."""

    retryable = True


class LinearInvalid(LinearError):
    """Linear refused the request itself (input, auth, permissions); retrying will not help."""


class LinearNotFound(LinearInvalid):
    """The referenced entity does not exist (or is not visible to this API key)."""


@dataclass(frozen=True)
class IssueRef:
    """What the bot needs to know about an issue to link it and to close the loop."""

    id: str
    identifier: str
    url: str
    title: str
    state_name: str
    state_type: str  # triage / backlog / unstarted / started / completed / canceled
    updated_at: str | None = None  # when read by a document that asks (polling orders states by it)


_RETRYABLE_TYPES = {"internal error", "lock timeout", "network error", "bootstrap error"}
_RETRYABLE_CODES = {"INTERNAL_SERVER_ERROR", "INTERNAL_ERROR", "LOCK_TIMEOUT", "NETWORK_ERROR"}


class LinearClient:
    """Narrow, synchronous Linear API client; one instance per API key, safe to share between threads."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = API_URL,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        # Personal API keys go in Authorization as-is; OAuth tokens need "Bearer " (pass it in api_key).
        self._http = httpx.Client(
            headers={"Authorization": api_key, "Content-Type": "application/json"},
            timeout=timeout,
            transport=transport,
        )
        self._url = base_url
        self._labels: dict[str, dict[str, str]] = {}
        self._blocked_until = 0.0  # monotonic time before which a rate-limited client makes no request at all

    def close(self) -> None:
        """Release pooled connections."""
        self._http.close()

    def __enter__(self) -> LinearClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create_issue(
        self, *, issue_id: str, team_id: str, title: str, description: str, label_ids: list[str] | None = None
    ) -> IssueRef:
        """Create the issue under our own UUID; a retry after a lost answer returns the existing issue."""
        data: dict[str, Any] = {"id": issue_id, "teamId": team_id, "title": title, "description": description}
        if label_ids:
            data["labelIds"] = label_ids
        try:
            payload = self._execute("IssueCreate", {"input": data})["issueCreate"]
        except LinearInvalid as exc:
            existing = self._existing_issue(issue_id)
            if existing is None:
                raise
            log.info("linear issue %s already existed (%s); treating create as done", issue_id, exc.code)
            return existing
        _check_success(payload, "issueCreate")
        if not payload.get("issue"):
            return self.get_issue(issue_id)  # Linear may omit the issue on success; read it back
        return _issue_ref(payload["issue"])

    def _existing_issue(self, issue_id: str) -> IssueRef | None:
        """Look up an issue by our id after a refused create (Linear rejects a duplicate id)."""
        try:
            return self.get_issue(issue_id)
        except LinearInvalid:
            return None

    def get_issue(self, id_or_identifier: str) -> IssueRef:
        """Read one issue by UUID or "ENG-123"; LinearNotFound when it does not exist."""
        issue = self._execute("IssueGet", {"id": id_or_identifier}).get("issue")
        if not issue:
            raise LinearNotFound(f"Linear issue {id_or_identifier!r} not found", code="NOT_FOUND")
        return _issue_ref(issue)

    def attach_url(self, *, issue_id: str, url: str, title: str, subtitle: str | None = None) -> str:
        """Attach a link (Linear keys attachments by url, so repeating it updates, not duplicates)."""
        data: dict[str, Any] = {"issueId": issue_id, "url": url, "title": title}
        if subtitle is not None:
            data["subtitle"] = subtitle
        payload = self._execute("AttachmentCreate", {"input": data})["attachmentCreate"]
        _check_success(payload, "attachmentCreate")
        return str(payload["attachment"]["id"])

    def comment(self, *, issue_id: str, body: str, comment_id: str | None = None) -> str:
        """Post a comment; pass a stored UUID v4 ``comment_id`` to make retries idempotent."""
        data: dict[str, Any] = {"issueId": issue_id, "body": body}
        if comment_id:
            data["id"] = comment_id
        try:
            payload = self._execute("CommentCreate", {"input": data})["commentCreate"]
        except LinearInvalid:
            if comment_id and self._comment_exists(comment_id):
                return comment_id
            raise
        _check_success(payload, "commentCreate")
        return str(payload["comment"]["id"])

    def put_comment(self, *, issue_id: str, comment_id: str, body: str) -> str:
        """Our one comment with a client-chosen UUID: rewritten in place when it exists, created otherwise."""
        try:
            payload = self._execute("CommentUpdate", {"id": comment_id, "input": {"body": body}})["commentUpdate"]
        except LinearNotFound:
            return self.comment(issue_id=issue_id, body=body, comment_id=comment_id)
        _check_success(payload, "commentUpdate")
        return comment_id

    def _comment_exists(self, comment_id: str) -> bool:
        """Whether our client-chosen comment id is already taken by a comment Linear holds."""
        try:
            return bool(self._execute("CommentGet", {"id": comment_id}).get("comment"))
        except LinearInvalid:
            return False

    def issues_by_ids(self, ids: list[str]) -> list[IssueRef]:
        """Current state of many issues (polling); ids Linear does not know are simply absent."""
        unique = list(dict.fromkeys(ids))
        found: list[IssueRef] = []
        for start in range(0, len(unique), _PAGE):
            chunk = unique[start : start + _PAGE]
            data = self._execute("IssuesByIds", {"ids": chunk, "first": len(chunk)})
            found.extend(_issue_ref(node) for node in data["issues"]["nodes"])
        return found

    def labels(self, team_id: str) -> dict[str, str]:
        """Label name -> id for a team, workspace labels included (a team label wins a name clash)."""
        result: dict[str, str] = {}
        team_owned: set[str] = set()
        after: str | None = None
        while True:
            variables = {"teamId": team_id, "first": _PAGE, "after": after}
            conn = self._execute("TeamLabels", variables)["issueLabels"]
            for node in conn["nodes"]:
                name, is_team = node["name"], node.get("team") is not None
                if name not in result or (is_team and name not in team_owned):
                    result[name] = node["id"]
                if is_team:
                    team_owned.add(name)
            if not conn["pageInfo"]["hasNextPage"]:
                return result
            after = conn["pageInfo"]["endCursor"]

    def label_ids(self, team_id: str) -> dict[str, str]:
        """Lower-cased label name -> id, read once per team and process (labels change rarely)."""
        if team_id not in self._labels:
            self._labels[team_id] = {k.lower(): v for k, v in self.labels(team_id).items()}
        return self._labels[team_id]

    def _execute(self, operation: str, variables: dict[str, Any]) -> dict[str, Any]:
        """POST one named document and return ``data``, or raise the matching LinearError."""
        wait = self._blocked_until - time.monotonic()
        if wait > 0:  # Linear said when to come back: every caller (outbox, poll) waits, none spends a request
            raise LinearRateLimited(f"Linear {operation}: rate limited for {wait:.0f} s more", retry_after=wait)
        body = {"query": GRAPHQL_DOCUMENTS[operation], "variables": variables, "operationName": operation}
        try:
            response = self._http.post(self._url, json=body)
        except httpx.TimeoutException as exc:
            raise LinearUnavailable(f"Linear {operation} timed out: {exc}", code="TIMEOUT") from exc
        except httpx.TransportError as exc:
            raise LinearUnavailable(f"Linear {operation} failed: {exc}", code="NETWORK") from exc
        try:
            return _data_or_raise(operation, response)
        except LinearRateLimited as exc:
            if exc.retry_after:
                self._blocked_until = max(self._blocked_until, time.monotonic() + exc.retry_after)
            raise


def _data_or_raise(operation: str, response: httpx.Response) -> dict[str, Any]:
    """Tell GraphQL errors (HTTP 200/400 with ``errors``) from transport-level HTTP failures."""
    status = response.status_code
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("errors"):
        raise _graphql_error(operation, payload["errors"], response)
    message, hint = f"Linear {operation}: HTTP {status}", _retry_after(response)
    if status == 429:
        raise LinearRateLimited(message, code="RATELIMITED", retry_after=hint, status=status)
    if status >= 500 or status == 408:
        raise LinearUnavailable(message, code=f"HTTP_{status}", retry_after=hint, status=status)
    if status in (401, 403):
        raise LinearInvalid(message, code="AUTHENTICATION_ERROR", status=status)
    if status >= 400:
        raise LinearInvalid(message, code=f"HTTP_{status}", status=status)
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        # A 2xx that is not GraphQL JSON comes from a proxy or an outage page, not from Linear's API.
        raise LinearUnavailable(f"{message} without GraphQL data", code="BAD_RESPONSE", status=status)
    return payload["data"]


def _graphql_error(operation: str, errors: list[Any], response: httpx.Response) -> LinearError:
    """Map Linear's ``errors[].extensions`` (code, type, userPresentableMessage) to our exception tree."""
    items: list[dict[str, Any]] = [e if isinstance(e, dict) else {"message": str(e)} for e in errors]
    exts: list[dict[str, Any]] = [ext if isinstance(ext := e.get("extensions"), dict) else {} for e in items]
    codes = {str(ext.get("code", "")).upper() for ext in exts}
    first, ext = items[0], exts[0]
    code = str(ext.get("code") or "UNKNOWN").upper()
    kind = str(ext.get("type") or "").lower()
    message = f"Linear {operation}: {ext.get('userPresentableMessage') or first.get('message') or 'error'}"
    status, hint = response.status_code, _retry_after(response)
    if "RATELIMITED" in codes or kind == "ratelimited":
        return LinearRateLimited(message, code="RATELIMITED", retry_after=hint, status=status)
    if code in _RETRYABLE_CODES or kind in _RETRYABLE_TYPES or status >= 500:
        return LinearUnavailable(message, code=code, retry_after=hint, status=status)
    if str(first.get("message", "")).lower().startswith("entity not found"):
        return LinearNotFound(message, code=code, status=status)
    return LinearInvalid(message, code=code, status=status)


def _retry_after(response: httpx.Response, *, now_ms: float | None = None) -> float | None:
    """Seconds to wait: ``Retry-After``, else Linear's ``X-RateLimit-*-Reset`` (UTC epoch ms)."""
    header = response.headers.get("retry-after")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
    now = time.time() * 1000 if now_ms is None else now_ms
    exhausted: list[float] = []
    other: list[float] = []
    for budget in ("requests", "complexity", "endpoint-requests"):
        reset = response.headers.get(f"x-ratelimit-{budget}-reset", "").strip()
        if not reset.isdigit():
            continue
        wait = max(0.0, (int(reset) - now) / 1000)
        remaining = response.headers.get(f"x-ratelimit-{budget}-remaining", "").strip()
        (exhausted if remaining in ("", "0") else other).append(wait)
    if exhausted:
        return max(exhausted)  # every exhausted budget must refill before the call can pass
    return min(other) if other else None


def _check_success(payload: dict[str, Any] | None, mutation: str) -> None:
    """Mutations report ``success: false`` without errors in a few cases; treat that as a refusal."""
    if not payload or not payload.get("success"):
        raise LinearInvalid(f"Linear {mutation} returned success=false", code="UNSUCCESSFUL")


def _issue_ref(node: dict[str, Any]) -> IssueRef:
    """Build an IssueRef from the issue selection our documents share."""
    state = node.get("state") or {}
    return IssueRef(
        id=node["id"],
        identifier=node["identifier"],
        url=node["url"],
        title=node.get("title") or "",
        state_name=state.get("name") or "",
        state_type=state.get("type") or "",
        updated_at=node.get("updatedAt"),
    )


_IDENTIFIER = re.compile(r"^([A-Za-z][A-Za-z0-9_]{0,9})-([1-9][0-9]{0,8})$")
_URL = re.compile(r"^https?://linear\.app/[^/\s]+/issue/([A-Za-z][A-Za-z0-9_]{0,9}-[0-9]+)(?:[/?#]\S*)?$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def parse_issue_ref(text: str) -> str:
    """Accept what staff paste ("ENG-123", a linear.app issue URL, a Slack <url|label>, a UUID)."""
    raw = (text or "").strip()
    if raw.startswith("<") and raw.endswith(">"):
        raw = raw[1:-1].split("|", 1)[0].strip()
    if _UUID.match(raw):
        return raw.lower()
    url = _URL.match(raw)
    candidate = url.group(1) if url else raw
    if _IDENTIFIER.match(candidate):
        return candidate.upper()
    raise ValueError(
        f"Not a Linear issue reference: {text!r}. Use an identifier like ENG-123 "
        "or a link like https://linear.app/<workspace>/issue/ENG-123"
    )
