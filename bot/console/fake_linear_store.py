"""The in-memory Linear data behind FakeLinear, split out so the HTTP/GraphQL layer stays readable.

Resolvers raise graphql-core errors shaped like Linear's (INPUT_ERROR, "Entity not found"), so FakeLinear
can execute documents straight against this store.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from graphql import GraphQLError

DEFAULT_STATES = [
    ("Triage", "triage"), ("Backlog", "backlog"), ("Todo", "unstarted"),
    ("In Progress", "started"), ("Done", "completed"), ("Canceled", "canceled"),
]  # fmt: skip
Node = dict[str, Any]


class FakeStore:
    """In-memory teams, workflow states, labels, issues, attachments and comments, plus test helpers."""

    def __init__(self) -> None:
        self.teams: dict[str, Node] = {}
        self.states: dict[str, Node] = {}
        self.labels: dict[str, Node] = {}
        self.issue_rows: dict[str, Node] = {}
        self.attachments: dict[str, Node] = {}
        self.comments: dict[str, Node] = {}
        self.store_lock = threading.RLock()
        self._sync = 0

    def add_team(self, key: str = "ENG", name: str | None = None, *, id: str | None = None) -> str:
        """A team with Linear's default workflow (Triage, Backlog, Todo, In Progress, Done, Canceled)."""
        with self.store_lock:
            team_id = id or str(uuid.uuid4())
            self.teams[team_id] = {"id": team_id, "key": key.upper(), "name": name or key.title()}
            for state_name, state_type in DEFAULT_STATES:
                self.add_workflow_state(team_id, state_name, state_type)
            return team_id

    def add_workflow_state(self, team_id: str, name: str, type: str, *, id: str | None = None) -> str:
        """An extra workflow state (type: triage/backlog/unstarted/started/completed/canceled)."""
        with self.store_lock:
            state_id = id or str(uuid.uuid4())
            position = float(sum(1 for s in self.states.values() if s["team_id"] == team_id))
            row = {"id": state_id, "name": name, "type": type, "color": "#bec2c8", "position": position}
            self.states[state_id] = {**row, "team_id": team_id}
            return state_id

    def add_label(self, name: str, *, team_id: str | None = None, id: str | None = None) -> str:
        """A team label, or a workspace label when ``team_id`` is None."""
        with self.store_lock:
            label_id = id or str(uuid.uuid4())
            self.labels[label_id] = {"id": label_id, "name": name, "color": "#5e6ad2", "team_id": team_id}
            return label_id

    def add_issue(
        self, identifier: str = "ENG-12", title: str = "Existing issue", *, id: str | None = None,
        state: str | None = None, description: str | None = None, label_ids: list[str] | None = None,
    ) -> str:  # fmt: skip
        """An issue created "in Linear" by someone else; the team is created from the key if needed."""
        match = re.fullmatch(r"([A-Za-z][A-Za-z0-9_]*)-(\d+)", identifier)
        if not match:
            raise ValueError(f"bad identifier {identifier!r}")
        with self.store_lock:
            key = match.group(1).upper()
            known = [t["id"] for t in self.teams.values() if t["key"] == key]
            team_id = known[0] if known else self.add_team(key)
            state_id = self._state_id(team_id, state) if state else self._default_state(team_id)
            row = {"number": int(match.group(2)), "title": title, "description": description}
            return self._insert(id or str(uuid.uuid4()), team_id, state_id, label_ids, row)

    def set_issue_state(self, issue: str, state: str) -> None:
        """Move an issue (id or identifier) to a state given by name, type or id."""
        with self.store_lock:
            row = self._find_issue(issue)
            row["state_id"] = self._state_id(row["team_id"], state)
            row["updatedAt"] = _now()

    def issues(self) -> list[Node]:
        """Every issue as the API would show it."""
        with self.store_lock:
            return [self._issue_view(row) for row in self.issue_rows.values()]

    def _state_id(self, team_id: str, state: str) -> str:
        for s in self.states.values():
            if s["team_id"] == team_id and state in (s["name"], s["type"], s["id"]):
                return str(s["id"])
        raise ValueError(f"no workflow state {state!r} in team {team_id}")

    def _default_state(self, team_id: str) -> str:
        """API-created issues land in Backlog (then Todo, then Triage), as in a team without triage."""
        for wanted in ("backlog", "unstarted", "triage"):
            for s in sorted(self.states.values(), key=lambda s: s["position"]):
                if s["team_id"] == team_id and s["type"] == wanted:
                    return str(s["id"])
        raise _input_error("Team has no workflow states", "The team has no workflow states.")

    def _insert(self, issue_id: str, team_id: str, state_id: str, label_ids: list[str] | None, row: Node) -> str:
        ids = {"id": issue_id, "team_id": team_id, "state_id": state_id, "label_ids": list(label_ids or [])}
        self.issue_rows[issue_id] = {**row, **ids, "createdAt": _now(), "updatedAt": _now()}
        return issue_id

    def _find_issue(self, ref: str) -> Node:
        if ref in self.issue_rows:
            return self.issue_rows[ref]
        for row in self.issue_rows.values():
            if self._identifier(row).lower() == ref.lower():
                return row
        raise _not_found("Issue")

    def _identifier(self, row: Node) -> str:
        return f"{self.teams[row['team_id']]['key']}-{row['number']}"

    def _label_view(self, label: Node) -> Node:
        return {**label, "team": self.teams.get(label["team_id"] or "")}

    def _issue_view(self, row: Node) -> Node:
        identifier = self._identifier(row)
        slug = re.sub(r"[^a-z0-9]+", "-", row["title"].lower()).strip("-")[:60]
        state = self.states[row["state_id"]]
        labels = [self._label_view(self.labels[i]) for i in row["label_ids"]]
        view = {k: v for k, v in row.items() if not k.endswith("_id") and k != "label_ids"}
        view.update(identifier=identifier, url=f"https://linear.app/fake/issue/{identifier}/{slug}", priority=0.0)
        view.update(state={**state, "team": self.teams[state["team_id"]]}, team=self.teams[row["team_id"]])
        return {**view, "number": float(row["number"]), "labels": _page(labels, 250, None)}

    def _payload(self, key: str, value: Node) -> Node:
        self._sync += 1
        return {"success": True, "lastSyncId": float(self._sync), key: value}

    def _new_id(self, given: str | None, taken: dict[str, Node], entity: str) -> str:
        """Honour a client-chosen UUID v4 id; Linear refuses a malformed or an already-used one."""
        if given is None:
            return str(uuid.uuid4())
        with contextlib.suppress(ValueError):
            if uuid.UUID(given).version == 4 and given not in taken:
                return given
            if given in taken:
                raise _input_error(f"{entity} with this id already exists", f"The {entity} id is taken.")
        raise _input_error("Argument Validation Error", "id must be a UUID v4.")

    def resolvers(self) -> Node:
        """Root value for graphql-core: each root field is a callable taking (info, **args)."""
        return {"issue": self._q_issue, "issues": self._q_issues, "issueLabels": self._q_labels,
                "comment": self._q_comment, "issueCreate": self._m_issue_create,
                "attachmentCreate": self._m_attachment, "commentCreate": self._m_comment,
                "commentUpdate": self._m_comment_update}  # fmt: skip

    def _q_issue(self, _info: Any, id: str) -> Node:
        with self.store_lock:
            return self._issue_view(self._find_issue(id))

    def _q_issues(self, _info: Any, filter: Node | None = None, first: int | None = None,
                  after: str | None = None, **_: Any) -> Node:  # fmt: skip
        def own(row: Node, flt: Node) -> bool:
            return not flt.get("id") or _cmp(row["id"], flt["id"])

        with self.store_lock:
            rows = [self._issue_view(r) for r in self.issue_rows.values() if _combine(r, filter, own)]
        return _page(rows, first, after)

    def _q_labels(self, _info: Any, filter: Node | None = None, first: int | None = None,
                  after: str | None = None, **_: Any) -> Node:  # fmt: skip
        def own(label: Node, flt: Node) -> bool:
            team, team_id = flt.get("team") or {}, label["team_id"]
            if team.get("null") is not None and (team_id is None) != team["null"]:
                return False
            if team.get("id") and (team_id is None or not _cmp(team_id, team["id"])):
                return False
            return not flt.get("id") or _cmp(label["id"], flt["id"])

        with self.store_lock:
            rows = [self._label_view(lb) for lb in self.labels.values() if _combine(lb, filter, own)]
        return _page(rows, first, after)

    def _q_comment(self, _info: Any, id: str | None = None, **_: Any) -> Node:
        with self.store_lock:
            if id not in self.comments:
                raise _not_found("Comment")
            return self.comments[id]

    def _m_issue_create(self, _info: Any, input: Node) -> Node:
        with self.store_lock:
            team_id = input["teamId"]
            if team_id not in self.teams:
                raise _not_found("Team")
            issue_id = self._new_id(input.get("id"), self.issue_rows, "Issue")
            labels = input.get("labelIds") or []
            if any(self.labels.get(i, {"team_id": "?"})["team_id"] not in (None, team_id) for i in labels):
                raise _not_found("IssueLabel")
            number = 1 + max((r["number"] for r in self.issue_rows.values() if r["team_id"] == team_id), default=0)
            state_id = input.get("stateId") or self._default_state(team_id)
            row = {
                "number": number,
                "title": input.get("title") or "",
                "description": input.get("description"),
            }
            self._insert(issue_id, team_id, state_id, labels, row)
            return self._payload("issue", self._issue_view(self.issue_rows[issue_id]))

    def _m_attachment(self, _info: Any, input: Node) -> Node:
        with self.store_lock:
            issue_id = self._find_issue(input["issueId"])["id"]
            same = [a for a in self.attachments.values() if (a["issue_id"], a["url"]) == (issue_id, input["url"])]
            row: Node = same[0] if same else {"id": self._new_id(input.get("id"), self.attachments, "Attachment")}
            row.update(issue_id=issue_id, url=input["url"], createdAt=row.get("createdAt") or _now())
            row.update(title=input["title"], subtitle=input.get("subtitle"))  # same url: updated in place
            self.attachments[row["id"]] = row
            return self._payload("attachment", row)

    def _m_comment(self, _info: Any, input: Node) -> Node:
        with self.store_lock:
            issue = self._find_issue(input.get("issueId") or "")
            comment_id = self._new_id(input.get("id"), self.comments, "Comment")
            url = f"{self._issue_view(issue)['url']}#comment-{comment_id[:8]}"
            row = {"id": comment_id, "body": input.get("body") or "", "url": url, "createdAt": _now()}
            self.comments[comment_id] = {**row, "issue_id": issue["id"]}
            return self._payload("comment", self.comments[comment_id])

    def _m_comment_update(self, _info: Any, id: str, input: Node, **_: Any) -> Node:
        with self.store_lock:
            if id not in self.comments:
                raise _not_found("Comment")
            self.comments[id].update(body=input.get("body") or "", updatedAt=_now())
            return self._payload("comment", self.comments[id])


def _now() -> str:
    """ISO-8601 UTC with milliseconds, as Linear renders DateTime."""
    ms = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms)) + f".{int(ms * 1000) % 1000:03d}Z"


def _input_error(message: str, shown: str) -> GraphQLError:
    """A user error shaped like Linear's (type "invalid input", code INPUT_ERROR, statusCode 400)."""
    ext = {"type": "invalid input", "code": "INPUT_ERROR", "statusCode": 400, "userError": True}
    return GraphQLError(message, extensions={**ext, "userPresentableMessage": shown})


def _not_found(entity: str) -> GraphQLError:
    """Linear's answer for an unknown id or identifier."""
    return _input_error(f"Entity not found: {entity}", f"Could not find referenced {entity}.")


def _cmp(value: Any, comparator: Node) -> bool:
    """Evaluate an ID comparator (eq / neq / in / nin)."""
    checks: dict[str, Callable[[Any], bool]] = {
        "eq": lambda a: value == a, "neq": lambda a: value != a,
        "in": lambda a: value in a, "nin": lambda a: value not in a,
    }  # fmt: skip
    return all(checks[op](arg) for op, arg in comparator.items() if op in checks and arg is not None)


def _combine(node: Node, flt: Node | None, own: Callable[[Node, Node], bool]) -> bool:
    """Apply a filter's own fields and its ``or`` list, recursively."""
    if not flt:
        return True
    return own(node, flt) and (not flt.get("or") or any(_combine(node, f, own) for f in flt["or"]))


def _page(items: list[Node], first: int | None, after: str | None) -> Node:
    """A connection with offset cursors (Linear's cursors are opaque, so any string will do)."""
    start = int(after) if after and after.isdigit() else 0
    chunk = items[start : start + (first or 50)]
    end = start + len(chunk)
    cursors = {"startCursor": str(start) if chunk else None, "endCursor": str(end) if chunk else None}
    return {
        "nodes": chunk,
        "pageInfo": {"hasNextPage": end < len(items), "hasPreviousPage": start > 0, **cursors},
    }
