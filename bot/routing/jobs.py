"""Linear outbox handlers: create an issue under our own UUID, or attach feedback to an existing issue."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from bot.accounts.service import demand_markdown, enqueue_demand
from bot.capture.service import enqueue_card_update
from bot.deps import Deps
from bot.domain import Kind
from bot.linear.client import IssueRef, LinearClient, LinearError, LinearInvalid, LinearRateLimited
from bot.routing.service import customer, issue_description, issue_title, link_issue
from bot.runtime.outbox import Job, Permanent, Retry
from bot.slack.kit import mentioned_users, to_markdown
from storage import loops, queries
from storage.models import GONE_LINKS, Feedback, LinearLink, LinkStatus

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


def _setup(deps: Deps) -> tuple[LinearClient, str]:
    """The client and team; a job queued before Linear was unconfigured waits for a human."""
    if deps.linear is None or not deps.settings.linear_team_id:
        raise Permanent("Linear is not configured: set LINEAR_API_KEY and LINEAR_TEAM_ID")
    return deps.linear, deps.settings.linear_team_id


def _context(session: Session, job: Job) -> tuple[LinearLink, Feedback] | None:
    link = queries.link_by_id(session=session, link_id=int(job.payload["link_id"]))
    if link is None or link.status in GONE_LINKS:
        return None
    fb = queries.feedback_by_id(session=session, feedback_id=link.feedback_id)
    if fb is None:
        raise Permanent(f"feedback {link.feedback_id} not found")
    return link, fb


def _label_ids(deps: Deps, client: LinearClient, team: str, fb: Feedback) -> list[str]:
    """Type and theme mapped through LINEAR_LABELS to the team's label ids (unknown names are skipped)."""
    wanted = [deps.settings.linear_labels.get(n, n) for n in (fb.type or fb.suggested_type, fb.theme) if n]
    if not wanted:
        return []
    labels = client.label_ids(team)
    return [labels[n.lower()] for n in wanted if n.lower() in labels]


Call = Callable[[LinearClient, str, LinearLink, Feedback, dict[str, str]], IssueRef]


def _run(deps: Deps, session: Session, job: Job, call: Call) -> dict[str, Any]:
    """One Linear call for a pending link: skipped if undone, retried if Linear is down, failed if refused."""
    client, team = _setup(deps)
    found = _context(session, job)
    if found is None:
        return {"skipped": "cancelled"}
    link, fb = found
    try:
        with _linear_errors():
            issue = call(client, team, link, fb, _names(deps, fb))
    except LinearInvalid as exc:
        return _failed(session, link, fb, exc)
    return _linked(session, link, fb, issue)


def create(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """Creates the issue with the UUID stored before the first call, so retries never make two."""

    def call(client: LinearClient, team: str, link: LinearLink, fb: Feedback, names: dict[str, str]) -> IssueRef:
        return client.create_issue(
            issue_id=link.issue_id,
            team_id=team,
            title=issue_title(fb, names),
            description=issue_description(fb, names),
            label_ids=_label_ids(deps, client, team, fb),
        )

    return _run(deps, session, job, call)


def link(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """Resolves the key, attaches the customer's message to the issue, and counts the demand."""

    def call(client: LinearClient, _team: str, link: LinearLink, fb: Feedback, names: dict[str, str]) -> IssueRef:
        issue = client.get_issue(link.identifier or link.issue_id)
        url = fb.permalink or _card_link(deps, fb)
        if url:
            title, subtitle = f"Feedback from {customer(fb, names)}", to_markdown(fb.text, names)[:200] or None
            client.attach_url(issue_id=issue.id, url=url, title=title, subtitle=subtitle)
        return issue

    return _run(deps, session, job, call)


def _names(deps: Deps, fb: Feedback) -> dict[str, str]:
    """Names for the customer's mentions (as Slack shows them) and for the customer (their full name)."""
    names = deps.slack.display_names(mentioned_users(fb.text))
    if fb.author_user_id:
        names[fb.author_user_id] = deps.slack.full_name(fb.author_user_id)
    return names


def _card_link(deps: Deps, fb: Feedback) -> str | None:
    if fb.card_channel and fb.card_ts:
        return deps.slack.permalink(fb.card_channel, fb.card_ts)
    return None


def _linked(session: Session, link: LinearLink, fb: Feedback, issue: IssueRef) -> dict[str, Any]:
    link.issue_id, link.identifier, link.url, link.title = issue.id, issue.identifier, issue.url, issue.title
    link.state_type, link.state_name, link.error = issue.state_type, issue.state_name, None
    session.refresh(link, attribute_names=["status"])  # Undo may have run while Linear was answering
    if link.status in GONE_LINKS:
        link.status = LinkStatus.UNLINKED
        session.flush()
        return {"issue": issue.identifier, "unlinked": "undone while in flight"}
    link.status = LinkStatus.LINKED
    session.flush()
    for dup in queries.duplicates_of(session=session, feedback_id=fb.id):
        if not any(lk.issue_id == issue.id for lk in queries.links_for(session=session, feedback_id=dup.id)):
            link_issue(session, dup, issue.identifier, via="duplicate")
    for other in queries.links_to_issue(session=session, issue_id=link.issue_id):  # every card shows the demand
        enqueue_card_update(session, other.feedback_id, f"demand:{link.id}")
    if link.via != "duplicate":  # a merged duplicate hears nothing until the original's issue moves again
        snapshot = {"id": issue.id, "state_type": issue.state_type, "state_name": issue.state_name,
                    "identifier": issue.identifier, "title": issue.title, "url": issue.url}  # fmt: skip
        payload = {"issue": snapshot, "feedback_id": fb.id, "lane": f"issue:{issue.id}"}
        queries.enqueue(session=session, key=f"linear.linked:{link.id}", kind=Kind.LINEAR_STATE, payload=payload)
    enqueue_demand(session, issue.id)  # the issue's one comment lists the accounts asking
    detail = {"identifier": issue.identifier, "via": link.via}
    queries.add_event(session=session, feedback=fb, kind="linear_linked", actor=None, detail=detail)
    verb = "created" if link.via == "create" else "linked"
    text = f"Linear: <{issue.url}|{issue.identifier}> ({verb})"
    payload = {"feedback_id": fb.id, "text": text}
    queries.enqueue(session=session, key=f"audit:linear:{link.id}", kind=Kind.AUDIT, payload=payload)
    return {"issue": issue.identifier}


def _failed(session: Session, link: LinearLink, fb: Feedback, exc: LinearError) -> dict[str, Any]:
    link.status, link.error = LinkStatus.FAILED, str(exc)[:500]
    queries.add_event(session=session, feedback=fb, kind="linear_failed", actor=None, detail={"error": str(exc)})
    enqueue_card_update(session, fb.id, f"linear_failed:{link.id}")
    log.warning("Linear refused feedback %s: %s", fb.id, exc)
    return {"failed": f"Linear: {exc}"}


def demand_comment(deps: Deps, session: Session, job: Job) -> dict[str, Any]:
    """Rewrites the issue's demand comment with the accounts asking now (created under our UUID the first time)."""
    client, _team = _setup(deps)
    issue = loops.linear_issue(session=session, issue_id=str(job.payload["issue_id"]))
    if issue is None or not issue.demand_comment_id:
        raise Permanent(f"no demand comment id for issue {job.payload['issue_id']}")
    body = demand_markdown(session, issue.id)
    with _linear_errors():
        client.put_comment(issue_id=issue.id, comment_id=issue.demand_comment_id, body=body)
    return {"comment": issue.demand_comment_id}
