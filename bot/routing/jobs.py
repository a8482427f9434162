"""Linear outbox jobs: create an issue under our own UUID, or attach feedback to an existing issue."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from bot.linear.client import IssueRef, LinearClient, LinearError, LinearInvalid, LinearRateLimited
from bot.runtime.outbox import Job, Permanent, Retry
from bot.settings import Settings
from bot.slack.gateway import SlackGateway
from bot.triage.cards import who
from bot.triage.service import link_issue
from storage import queries
from storage.models import Feedback, LinearLink

log = logging.getLogger(__name__)


@contextmanager
def _linear_errors() -> Iterator[None]:
    """Rate limits, 5xx and timeouts are retried (after Retry-After); validation errors are not."""
    try:
        yield
    except LinearInvalid:
        raise
    except LinearRateLimited as exc:
        raise Retry(str(exc), exc.retry_after) from exc
    except LinearError as exc:  # 5xx / timeouts: our own backoff, not a rate-limit reset an hour away
        raise Retry(str(exc)) from exc


def issue_title(fb: Feedback) -> str:
    """`[Type] first line of the verbatim`, short enough for a Linear title."""
    first = (fb.text.splitlines() or ["Customer feedback"])[0].strip()
    kind = fb.type or fb.suggested_type or "Feedback"
    return f"[{kind}] {first[:120]}{'…' if len(first) > 120 else ''}"


def issue_description(fb: Feedback) -> str:
    """Markdown body: the customer's words quoted, who and where, context, and a link back to Slack."""
    quoted = "\n".join(f"> {line}" for line in fb.text.splitlines()) or "> (no text)"
    lines = [
        quoted,
        "",
        f"**Customer:** {who(fb)}" + (f" ({fb.author_team_id})" if fb.author_team_id else ""),
        f"**Source:** {fb.source} · captured via {', '.join(fb.tags)}",
    ]
    if fb.context:
        lines.append(f"**Context:** {fb.context}")
    if fb.permalink:
        lines.append(f"**Original message:** {fb.permalink}")
    lines.append(f"\nFeedback #{fb.id}, routed from Slack by Feedback Loop.")
    return "\n".join(lines)


class LinearJobs:
    """Registered on the worker as the `linear.create` and `linear.link` outbox kinds."""

    def __init__(self, settings: Settings, client: LinearClient, gateway: SlackGateway):
        self.settings = settings
        self.client = client
        self.gateway = gateway
        self._labels: dict[str, str] | None = None

    def _label_ids(self, fb: Feedback) -> list[str]:
        """Type and theme mapped through LINEAR_LABELS to the team's label ids (unknown names are skipped)."""
        wanted = [self.settings.linear_labels.get(n, n) for n in (fb.type or fb.suggested_type, fb.theme) if n]
        if not wanted:
            return []
        if self._labels is None:
            assert self.settings.linear_team_id
            with _linear_errors():
                self._labels = {k.lower(): v for k, v in self.client.labels(self.settings.linear_team_id).items()}
        return [self._labels[n.lower()] for n in wanted if n.lower() in self._labels]

    def _context(self, session: Session, job: Job) -> tuple[LinearLink, Feedback] | None:
        link = queries.link_by_id(session=session, link_id=int(job.payload["link_id"]))
        if link is None or link.status in {"cancelled", "unlinked"}:
            return None
        fb = queries.feedback_by_id(session=session, feedback_id=link.feedback_id)
        if fb is None:
            raise Permanent(f"feedback {link.feedback_id} not found")
        return link, fb

    def create(self, session: Session, job: Job) -> dict[str, Any]:
        """Creates the issue with the UUID stored before the first call, so retries never make two."""
        found = self._context(session, job)
        if found is None:
            return {"skipped": "cancelled"}
        link, fb = found
        assert self.settings.linear_team_id
        try:
            with _linear_errors():
                issue = self.client.create_issue(
                    issue_id=link.issue_id,
                    team_id=self.settings.linear_team_id,
                    title=issue_title(fb),
                    description=issue_description(fb),
                    label_ids=self._label_ids(fb),
                )
        except LinearInvalid as exc:
            return self._failed(session, link, fb, exc)
        return self._linked(session, link, fb, issue)

    def link(self, session: Session, job: Job) -> dict[str, Any]:
        """Resolves the key, attaches the customer's message to the issue, and counts the demand."""
        found = self._context(session, job)
        if found is None:
            return {"skipped": "cancelled"}
        link, fb = found
        try:
            with _linear_errors():
                issue = self.client.get_issue(link.identifier or link.issue_id)
                url = fb.permalink or self._card_link(fb)
                if url:
                    self.client.attach_url(
                        issue_id=issue.id, url=url, title=f"Feedback from {who(fb)}", subtitle=fb.text[:200] or None
                    )
        except LinearInvalid as exc:
            return self._failed(session, link, fb, exc)
        return self._linked(session, link, fb, issue)

    def _card_link(self, fb: Feedback) -> str | None:
        if fb.card_channel and fb.card_ts:
            return self.gateway.permalink(fb.card_channel, fb.card_ts)
        return None

    def _linked(self, session: Session, link: LinearLink, fb: Feedback, issue: IssueRef) -> dict[str, Any]:
        link.issue_id, link.identifier, link.url, link.title = issue.id, issue.identifier, issue.url, issue.title
        link.state_type, link.state_name, link.error = issue.state_type, issue.state_name, None
        session.refresh(link, attribute_names=["status"])  # Undo may have run while Linear was answering
        if link.status in {"cancelled", "unlinked"}:
            link.status = "unlinked"
            session.flush()
            return {"issue": issue.identifier, "unlinked": "undone while in flight"}
        link.status = "linked"
        session.flush()
        for dup in queries.duplicates_of(session=session, feedback_id=fb.id):
            if not any(lk.issue_id == issue.id for lk in queries.links_for(session=session, feedback_id=dup.id)):
                link_issue(session, dup, issue.identifier, via="duplicate")
        self._refresh_demand(session, link)
        queries.add_event(
            session=session,
            feedback=fb,
            kind="linear_linked",
            actor=None,
            detail={"identifier": issue.identifier, "via": link.via},
        )
        queries.enqueue(
            session=session,
            key=f"audit:linear:{link.id}",
            kind="audit",
            payload={
                "feedback_id": fb.id,
                "text": f"Linear: <{issue.url}|{issue.identifier}> ({'created' if link.via == 'create' else 'linked'})",
            },
        )
        return {"issue": issue.identifier}

    def _failed(self, session: Session, link: LinearLink, fb: Feedback, exc: LinearError) -> dict[str, Any]:
        link.status, link.error = "failed", str(exc)[:500]
        queries.add_event(session=session, feedback=fb, kind="linear_failed", actor=None, detail={"error": str(exc)})
        queries.enqueue(
            session=session,
            key=f"card_update:{fb.id}:linear_failed:{link.id}",
            kind="card_update",
            payload={"feedback_id": fb.id},
        )
        log.warning("Linear refused feedback %s: %s", fb.id, exc)
        return {"failed": f"Linear: {exc}"}

    def _refresh_demand(self, session: Session, link: LinearLink) -> None:
        """Every card linked to the issue shows the new request count."""
        for other in queries.links_to_issue(session=session, issue_id=link.issue_id):
            queries.enqueue(
                session=session,
                key=f"card_update:{other.feedback_id}:demand:{link.id}",
                kind="card_update",
                payload={"feedback_id": other.feedback_id},
            )
