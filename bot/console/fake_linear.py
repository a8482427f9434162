"""A local stand-in for Linear's GraphQL API over real HTTP, for tests and ``feedbackbot console``.

Every document is parsed and validated with graphql-core: against Linear's published schema when
``../shared/schemas/linear-schema.graphql`` (or ``$LINEAR_SCHEMA_PATH``) exists, and always against
the subset below, which is also what executes. Answers use Linear's shapes: ``data`` / ``errors`` with
``extensions.code`` (RATELIMITED, INPUT_ERROR, GRAPHQL_VALIDATION_FAILED, AUTHENTICATION_ERROR), real
HTTP statuses, and ``X-RateLimit-Requests-*`` headers (reset in UTC epoch milliseconds).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from graphql import GraphQLError, GraphQLSchema, build_schema, execute_sync, parse, validate

from bot.console.fake_linear_store import DEFAULT_STATES as DEFAULT_STATES  # re-exported for existing importers
from bot.console.fake_linear_store import FakeStore as FakeStore  # re-exported for existing importers
from bot.console.fake_linear_store import Node

DEFAULT_SCHEMA_PATH = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "linear-schema.graphql"

# The part of Linear's schema that bot/linear.py uses; names and types match the published schema.
SUBSET_SDL = """
scalar DateTime
scalar JSONObject
type Query {
  issue(id: String!): Issue!
  issues(after: String, filter: IssueFilter, first: Int, includeArchived: Boolean): IssueConnection!
  issueLabels(after: String, filter: IssueLabelFilter, first: Int): IssueLabelConnection!
  comment(hash: String, id: String): Comment!
}
type Mutation {
  issueCreate(input: IssueCreateInput!): IssuePayload!
  attachmentCreate(input: AttachmentCreateInput!): AttachmentPayload!
  commentCreate(input: CommentCreateInput!): CommentPayload!
  commentUpdate(id: String!, input: CommentUpdateInput!, skipEditedAt: Boolean): CommentPayload!
}
input CommentUpdateInput { body: String }
input IssueCreateInput { id: String teamId: String! title: String description: String labelIds: [String!]
  stateId: String priority: Int }
input AttachmentCreateInput { id: String issueId: String! url: String! title: String! subtitle: String }
input CommentCreateInput { id: String issueId: String body: String }
input IDComparator { eq: ID in: [ID!] neq: ID nin: [ID!] }
input IssueIDComparator { eq: ID in: [ID!] neq: ID nin: [ID!] }
input IssueFilter { id: IssueIDComparator or: [IssueFilter!] }
input NullableTeamFilter { id: IDComparator null: Boolean }
input IssueLabelFilter { id: IDComparator team: NullableTeamFilter or: [IssueLabelFilter!] }
type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String }
type Team { id: ID! key: String! name: String! }
type WorkflowState { id: ID! name: String! type: String! color: String! position: Float! team: Team! }
type IssueLabel { id: ID! name: String! color: String! team: Team }
type IssueLabelConnection { nodes: [IssueLabel!]! pageInfo: PageInfo! }
type Issue { id: ID! identifier: String! number: Float! title: String! description: String url: String!
  priority: Float! state: WorkflowState! team: Team! labels: IssueLabelConnection!
  createdAt: DateTime! updatedAt: DateTime! }
type IssueConnection { nodes: [Issue!]! pageInfo: PageInfo! }
type IssuePayload { success: Boolean! lastSyncId: Float! issue: Issue }
type Comment { id: ID! body: String! url: String! createdAt: DateTime! }
type CommentPayload { success: Boolean! lastSyncId: Float! comment: Comment! }
type Attachment { id: ID! url: String! title: String! subtitle: String createdAt: DateTime! }
type AttachmentPayload { success: Boolean! lastSyncId: Float! attachment: Attachment! }
"""
Answer = tuple[int, dict[str, str], Node]  # HTTP status, extra headers, JSON body


@lru_cache(maxsize=1)
def subset_schema() -> GraphQLSchema:
    """The executable subset (built once per process)."""
    return build_schema(SUBSET_SDL)


@lru_cache(maxsize=4)
def published_schema(path: str) -> GraphQLSchema | None:
    """Linear's full published schema when the file is present (about 1 s to build, so cached)."""
    file = Path(path)
    return build_schema(file.read_text(encoding="utf-8")) if file.is_file() else None


@dataclass(frozen=True)
class Call:
    """One request the fake received, for assertions."""

    operation_name: str | None
    variables: dict[str, Any]
    authorization: str | None


@dataclass(frozen=True)
class _Script:
    """A scripted answer (or delay) for one upcoming request."""

    status: int
    error_code: str | None
    retry_after: float | None
    message: str
    sleep: float


class FakeLinear(FakeStore):
    """Linear's GraphQL endpoint on 127.0.0.1:<free port>, with the store's helpers; a context manager."""

    def __init__(self, *, api_key: str | None = None, schema_path: Path | str | None = None) -> None:
        super().__init__()
        self.api_key = api_key  # when set, Authorization must be exactly this (Linear: no "Bearer")
        self.schema_path = Path(schema_path or os.environ.get("LINEAR_SCHEMA_PATH") or DEFAULT_SCHEMA_PATH)
        self.calls: list[Call] = []
        self._scripts: list[_Script] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> FakeLinear:
        """Bind a free port and serve from a daemon thread."""
        published_schema(str(self.schema_path))  # build before the first request, not during it
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        serve = self._server.serve_forever
        threading.Thread(target=serve, kwargs={"poll_interval": 0.05}, name="fake-linear", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeLinear:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The endpoint to pass as ``LinearClient(base_url=...)``."""
        assert self._server is not None, "FakeLinear is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/graphql"

    def fail_next(
        self, status: int = 400, error_code: str | None = "RATELIMITED", retry_after: float | None = None,
        *, message: str | None = None, times: int = 1,
    ) -> None:  # fmt: skip
        """Fail the next requests; the default is Linear's rate limit (HTTP 400, code RATELIMITED)."""
        text = message or ("Rate limit exceeded" if error_code == "RATELIMITED" else "Internal server error")
        with self._lock:
            self._scripts += [_Script(status, error_code, retry_after, text, 0.0) for _ in range(times)]

    def stall_next(self, seconds: float, *, times: int = 1) -> None:
        """Sleep before answering the next requests (normally), to exercise client timeouts."""
        with self._lock:
            self._scripts += [_Script(200, None, None, "", seconds) for _ in range(times)]

    def operations(self) -> list[str | None]:
        """Operation names received so far, in order."""
        with self._lock:
            return [c.operation_name for c in self.calls]

    def handle(self, body: bytes, authorization: str | None) -> Answer:
        """Answer one POST body the way api.linear.app would."""
        try:
            request = json.loads(body or b"{}")
            query, variables, op_name = (
                request["query"],
                request.get("variables") or {},
                request.get("operationName"),
            )
        except (ValueError, KeyError, TypeError):
            return 400, {}, _error("Must provide query string.", "BAD_REQUEST", "graphql error", 400)
        with self._lock:
            self.calls.append(Call(op_name, variables, authorization))
            script = self._scripts.pop(0) if self._scripts else None
        if script is not None:
            time.sleep(script.sleep)
            if script.error_code is not None or script.status != 200:
                return _scripted(script)
        if self.api_key is not None and authorization != self.api_key:
            message = "Authentication required, not authenticated"
            return 401, {}, _error(message, "AUTHENTICATION_ERROR", "authentication error", 401)
        return self._run(query, variables, op_name)

    def _run(self, query: str, variables: Node, op_name: str | None) -> Answer:
        """Validate against the published schema (if present) and the subset, then execute on the store."""
        try:
            document = parse(query)
        except GraphQLError as exc:
            return 400, {}, {"errors": [_validation_error(exc)]}
        full = published_schema(str(self.schema_path))
        errors = (validate(full, document) if full is not None else []) or validate(subset_schema(), document)
        if errors:
            return 400, {}, {"errors": [_validation_error(e) for e in errors]}
        result = execute_sync(
            subset_schema(),
            document,
            root_value=self.resolvers(),
            variable_values=variables,
            operation_name=op_name,
        )
        payload: Node = {"data": result.data}
        status = 200
        if result.errors:
            payload["errors"] = [e.formatted for e in result.errors]
            if result.data is None:  # Linear answers a failed request with the error's statusCode
                status = int((result.errors[0].extensions or {}).get("statusCode", 400))
        return status, _ratelimit_headers(exhausted=False, wait=None), payload


def _error(message: str, code: str, kind: str, status: int) -> Node:
    """Linear's error envelope: ``errors[].extensions`` with type, code, statusCode, userError."""
    ext = {"type": kind, "code": code, "statusCode": status, "userError": status < 500}
    return {"errors": [{"message": message, "extensions": {**ext, "userPresentableMessage": message}}]}


def _scripted(script: _Script) -> Answer:
    """A scripted failure with the headers Linear sends alongside it."""
    headers = _ratelimit_headers(exhausted=script.error_code == "RATELIMITED", wait=script.retry_after)
    if script.retry_after is not None and script.status in (429, 503):
        headers["Retry-After"] = str(int(script.retry_after))
    if script.error_code is None:
        return script.status, headers, {"message": script.message}  # not GraphQL: a proxy / load balancer
    kinds = {
        "RATELIMITED": "ratelimited",
        "INPUT_ERROR": "invalid input",
        "AUTHENTICATION_ERROR": "authentication error",
    }
    kind = kinds.get(script.error_code, "internal error")
    return script.status, headers, _error(script.message, script.error_code, kind, script.status)


def _validation_error(exc: GraphQLError) -> Node:
    """A document error the way Linear reports it (HTTP 400, GRAPHQL_VALIDATION_FAILED)."""
    ext = {"code": "GRAPHQL_VALIDATION_FAILED", "type": "graphql error", "userError": True}
    return {**exc.formatted, "extensions": ext}


def _ratelimit_headers(*, exhausted: bool, wait: float | None) -> dict[str, str]:
    """``X-RateLimit-Requests-*``; the reset is UTC epoch milliseconds, as Linear documents."""
    reset = str(int(time.time() * 1000 + (3600 if wait is None else wait) * 1000))
    remaining = "0" if exhausted else "2499"
    prefix = "X-RateLimit-Requests-"
    return {f"{prefix}Limit": "2500", f"{prefix}Remaining": remaining, f"{prefix}Reset": reset}


def _handler_for(fake: FakeLinear) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to one FakeLinear."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers, payload = fake.handle(body, self.headers.get("Authorization"))
            raw = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json; charset=utf-8", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a timed-out client left
                self.wfile.write(raw)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    return Handler
