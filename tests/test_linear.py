"""LinearClient against the fake Linear over real HTTP on 127.0.0.1, plus webhook and reference parsing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.console.fake_linear import FakeLinear
from bot.linear import client as linear
from bot.linear.client import (
    LinearClient,
    LinearError,
    LinearInvalid,
    LinearNotFound,
    LinearRateLimited,
    LinearUnavailable,
    parse_issue_ref,
)
from bot.linear.webhook import parse_webhook, verify_webhook

PAYLOADS = Path(__file__).parent / "payloads"
API_KEY = "lin_api_test_key"


@pytest.fixture
def fake() -> Iterator[FakeLinear]:
    with FakeLinear(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def client(fake: FakeLinear) -> Iterator[LinearClient]:
    with LinearClient(API_KEY, base_url=fake.url, timeout=2.0) as c:
        yield c


@pytest.fixture
def team(fake: FakeLinear) -> str:
    return fake.add_team("ENG", "Engineering")


def new_id() -> str:
    return str(uuid.uuid4())


# -- issues -------------------------------------------------------------------------------------------
def test_create_issue_with_labels_and_description(fake: FakeLinear, client: LinearClient, team: str) -> None:
    bug = fake.add_label("Bug", team_id=team)
    customer = fake.add_label("Customer feedback")  # workspace label
    issue_id = new_id()
    ref = client.create_issue(
        issue_id=issue_id, team_id=team, title="CSV export drops accents", description="From **Acme**",
        label_ids=[bug, customer],
    )  # fmt: skip
    assert (ref.id, ref.identifier, ref.title) == (issue_id, "ENG-1", "CSV export drops accents")
    assert (ref.state_name, ref.state_type) == ("Backlog", "backlog")
    assert ref.url.startswith("https://linear.app/") and "/issue/ENG-1" in ref.url
    [stored] = fake.issues()
    assert stored["description"] == "From **Acme**"
    assert {n["name"] for n in stored["labels"]["nodes"]} == {"Bug", "Customer feedback"}
    call = fake.calls[-1]
    assert call.operation_name == "IssueCreate" and call.authorization == API_KEY  # no "Bearer"
    assert call.variables["input"]["id"] == issue_id


def test_create_is_idempotent_on_our_id(fake: FakeLinear, client: LinearClient, team: str) -> None:
    issue_id = new_id()
    first = client.create_issue(issue_id=issue_id, team_id=team, title="T", description="D")
    again = client.create_issue(issue_id=issue_id, team_id=team, title="T", description="D")
    assert again == first
    assert len(fake.issues()) == 1
    assert fake.operations() == ["IssueCreate", "IssueCreate", "IssueGet"]


def test_create_retried_after_lost_answer_makes_one_issue(fake: FakeLinear, team: str) -> None:
    issue_id = new_id()
    fake.stall_next(0.6)  # Linear creates the issue, but the answer arrives after our timeout
    with LinearClient(API_KEY, base_url=fake.url, timeout=0.2) as slow:
        with pytest.raises(LinearUnavailable) as exc:
            slow.create_issue(issue_id=issue_id, team_id=team, title="T", description="D")
        assert exc.value.retryable and exc.value.code == "TIMEOUT"
        time.sleep(0.6)
        ref = slow.create_issue(issue_id=issue_id, team_id=team, title="T", description="D")
    assert ref.id == issue_id
    assert len(fake.issues()) == 1


def test_get_issue_by_identifier_and_uuid(fake: FakeLinear, client: LinearClient) -> None:
    issue_id = fake.add_issue("ENG-12", "Slow search", state="In Progress")
    by_key = client.get_issue("ENG-12")
    assert (by_key.id, by_key.identifier, by_key.state_type, by_key.state_name) == (
        issue_id, "ENG-12", "started", "In Progress",
    )  # fmt: skip
    assert client.get_issue(issue_id) == by_key


def test_get_unknown_issue_is_not_found(client: LinearClient, team: str) -> None:
    with pytest.raises(LinearNotFound) as exc:
        client.get_issue("ENG-999")
    assert isinstance(exc.value, LinearInvalid) and not exc.value.retryable
    assert exc.value.code == "INPUT_ERROR"


def test_attach_url_is_idempotent_per_url(fake: FakeLinear, client: LinearClient) -> None:
    issue_id = fake.add_issue("ENG-5")
    url = "https://ourco.slack.com/archives/C0SHARED/p1763870000000100"
    first = client.attach_url(issue_id=issue_id, url=url, title="Slack thread", subtitle="#acme-shared")
    second = client.attach_url(issue_id="ENG-5", url=url, title="Slack thread", subtitle="3 reports")
    assert first == second and len(fake.attachments) == 1
    assert fake.attachments[first]["subtitle"] == "3 reports"
    other = client.attach_url(issue_id=issue_id, url=url + "?x=1", title="Another")
    assert other != first


def test_comment_and_idempotent_comment(fake: FakeLinear, client: LinearClient) -> None:
    issue_id = fake.add_issue("ENG-7")
    plain = client.comment(issue_id=issue_id, body="Acme asked again")
    assert fake.comments[plain]["body"] == "Acme asked again"
    chosen = new_id()
    assert client.comment(issue_id=issue_id, body="once", comment_id=chosen) == chosen
    assert client.comment(issue_id=issue_id, body="once", comment_id=chosen) == chosen
    assert len(fake.comments) == 2


def test_issues_by_ids_polls_states(fake: FakeLinear, client: LinearClient) -> None:
    a = fake.add_issue("ENG-1", "A")
    b = fake.add_issue("ENG-2", "B")
    fake.set_issue_state("ENG-2", "Done")
    refs = {r.identifier: r for r in client.issues_by_ids([a, b, new_id(), a])}
    assert set(refs) == {"ENG-1", "ENG-2"}
    assert refs["ENG-1"].state_type == "backlog" and refs["ENG-2"].state_type == "completed"
    assert fake.calls[-1].variables == {"ids": [a, b, fake.calls[-1].variables["ids"][2]], "first": 3}


def test_issues_by_ids_pages_large_lists(fake: FakeLinear, client: LinearClient) -> None:
    ids = [fake.add_issue(f"ENG-{n}") for n in range(1, 151)]
    assert len(client.issues_by_ids(ids)) == 150
    assert fake.operations() == ["IssuesByIds", "IssuesByIds"]
    assert client.issues_by_ids([]) == []


def test_labels_team_and_workspace(fake: FakeLinear, client: LinearClient, team: str) -> None:
    other = fake.add_team("OPS")
    bug = fake.add_label("Bug", team_id=team)
    fake.add_label("Bug")  # workspace label with the same name: the team's wins
    feedback = fake.add_label("Customer feedback")
    fake.add_label("Pager", team_id=other)
    for n in range(120):  # more than one page
        fake.add_label(f"ws-{n}")
    names = client.labels(team)
    assert names["Bug"] == bug and names["Customer feedback"] == feedback
    assert "Pager" not in names and len(names) == 122


# -- errors -------------------------------------------------------------------------------------------
def test_ratelimited_maps_to_rate_limited_with_retry_after(fake: FakeLinear, client: LinearClient) -> None:
    fake.fail_next(status=400, error_code="RATELIMITED", retry_after=30)
    with pytest.raises(LinearRateLimited) as exc:
        client.get_issue("ENG-1")
    err = exc.value
    assert err.retryable and err.code == "RATELIMITED" and err.status == 400
    assert err.retry_after is not None and 25 < err.retry_after <= 30


def test_http_429_uses_retry_after_header(fake: FakeLinear, client: LinearClient) -> None:
    fake.fail_next(status=429, error_code=None, retry_after=7)
    with pytest.raises(LinearRateLimited) as exc:
        client.get_issue("ENG-1")
    assert exc.value.retry_after == 7.0


@pytest.mark.parametrize("code", [None, "INTERNAL_SERVER_ERROR"])
def test_500_is_unavailable(fake: FakeLinear, client: LinearClient, code: str | None) -> None:
    fake.fail_next(status=500, error_code=code)
    with pytest.raises(LinearUnavailable) as exc:
        client.get_issue("ENG-1")
    assert exc.value.retryable and exc.value.status == 500


def test_timeout_is_unavailable(fake: FakeLinear) -> None:
    fake.add_issue("ENG-1")
    fake.stall_next(0.5)
    with LinearClient(API_KEY, base_url=fake.url, timeout=0.1) as slow, pytest.raises(LinearUnavailable) as exc:
        slow.get_issue("ENG-1")
    assert exc.value.code == "TIMEOUT" and exc.value.retryable


def test_connection_refused_is_unavailable() -> None:
    server = FakeLinear().start()
    url = server.url
    server.stop()
    with LinearClient(API_KEY, base_url=url) as c, pytest.raises(LinearUnavailable) as exc:
        c.get_issue("ENG-1")
    assert exc.value.code == "NETWORK"


def test_input_validation_error_is_invalid(fake: FakeLinear, client: LinearClient, team: str) -> None:
    with pytest.raises(LinearInvalid) as exc:
        client.create_issue(issue_id="not-a-uuid", team_id=team, title="T", description="D")
    assert not exc.value.retryable and exc.value.code == "INPUT_ERROR"
    assert fake.issues() == []


def test_unknown_team_is_invalid(client: LinearClient) -> None:
    with pytest.raises(LinearInvalid, match="Team"):
        client.create_issue(issue_id=new_id(), team_id=new_id(), title="T", description="D")


def test_document_validation_error_is_invalid(
    fake: FakeLinear, client: LinearClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        linear.GRAPHQL_DOCUMENTS, "IssueGet", "query IssueGet($id: String!) { issue(id: $id) { nope } }"
    )
    with pytest.raises(LinearInvalid) as exc:
        client.get_issue("ENG-1")
    assert exc.value.code == "GRAPHQL_VALIDATION_FAILED" and exc.value.status == 400


def test_wrong_api_key_is_invalid(fake: FakeLinear) -> None:
    with LinearClient("Bearer " + API_KEY, base_url=fake.url) as c, pytest.raises(LinearInvalid) as exc:
        c.get_issue("ENG-1")
    assert exc.value.code == "AUTHENTICATION_ERROR" and exc.value.status == 401 and not exc.value.retryable


@pytest.mark.parametrize(
    ("fixture", "error"),
    [
        ("linear_error_ratelimited.json", LinearRateLimited),
        ("linear_error_entity_not_found.json", LinearNotFound),
        ("linear_error_authentication.json", LinearInvalid),
    ],
)
def test_documented_error_bodies(fixture: str, error: type[LinearError]) -> None:
    recorded = json.loads((PAYLOADS / fixture).read_text())

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(recorded["status"], headers=recorded["headers"], json=recorded["body"])

    with LinearClient(API_KEY, transport=httpx.MockTransport(answer)) as c, pytest.raises(error) as exc:
        c.get_issue("ENG-123")
    assert type(exc.value) is error
    if error is LinearRateLimited:
        assert exc.value.retry_after == 0.0  # the recorded reset is in the past: retry now


def test_non_graphql_200_is_unavailable() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, text="<html>maintenance</html>"))
    with LinearClient(API_KEY, transport=transport) as c, pytest.raises(LinearUnavailable):
        c.get_issue("ENG-1")


def test_fake_rejects_documents_invalid_for_linear(fake: FakeLinear) -> None:
    response = httpx.post(fake.url, json={"query": "{ issue(id: 1) { id } }"}, headers={"Authorization": API_KEY})
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


# -- references and webhooks --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ENG-123", "ENG-123"),
        ("  eng-7 ", "ENG-7"),
        ("https://linear.app/acme/issue/ENG-123/some-title", "ENG-123"),
        ("https://linear.app/acme/issue/ENG-123", "ENG-123"),
        ("https://linear.app/acme/issue/ENG-123/some-title?foo=1#comment-abc", "ENG-123"),
        ("<https://linear.app/acme/issue/OPS2-9/x|OPS2-9>", "OPS2-9"),
        ("2174ADD1-F7C8-44E3-BBF3-2D60B5EA8BC9", "2174add1-f7c8-44e3-bbf3-2d60b5ea8bc9"),
    ],
)
def test_parse_issue_ref(text: str, expected: str) -> None:
    assert parse_issue_ref(text) == expected


@pytest.mark.parametrize(
    "text", ["", "ENG", "123", "ENG-", "ENG-0", "https://example.com/acme/issue/ENG-1", "see ENG-12 please"]
)
def test_parse_issue_ref_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="ENG-123"):
        parse_issue_ref(text)


SECRET = "lin_wh_test_secret"


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_verify_webhook_good_bad_and_stale() -> None:
    body = (PAYLOADS / "linear_webhook_issue_update.json").read_bytes()
    sent = json.loads(body)["webhookTimestamp"]
    assert verify_webhook(body, sign(body), SECRET, now_ms=sent + 5_000)
    assert verify_webhook(body, sign(body).upper(), SECRET, now_ms=sent)
    assert not verify_webhook(body, sign(body, "other"), SECRET, now_ms=sent)
    assert not verify_webhook(body + b" ", sign(body), SECRET, now_ms=sent)
    assert not verify_webhook(body, None, SECRET, now_ms=sent)
    assert not verify_webhook(body, sign(body), SECRET, now_ms=sent + 61_000)  # replayed a minute later
    assert verify_webhook(body, sign(body), SECRET, now_ms=sent + 100_000, tolerance_s=120)
    assert not verify_webhook(body, sign(body), SECRET, timestamp_ms=sent - 3_600_000, now_ms=sent)
    unstamped = b'{"action":"update"}'
    assert not verify_webhook(unstamped, sign(unstamped), SECRET)


def test_parse_webhook_issue_update_fixture() -> None:
    event = parse_webhook((PAYLOADS / "linear_webhook_issue_update.json").read_bytes())
    assert (event.action, event.type) == ("update", "Issue")
    assert event.issue_id == "2174add1-f7c8-44e3-bbf3-2d60b5ea8bc9" and event.identifier == "ENG-123"
    assert (event.state_type, event.state_name) == ("completed", "Done")
    assert event.url == "https://linear.app/ourco/issue/ENG-123/csv-export-drops-non-ascii-characters"
    assert event.webhook_timestamp == 1763870000123 and event.state_changed


def test_parse_webhook_comment_fixture() -> None:
    event = parse_webhook((PAYLOADS / "linear_webhook_comment_create.json").read_bytes())
    assert (event.action, event.type, event.issue_id) == ("create", "Comment", "2174add1-f7c8-44e3-bbf3-2d60b5ea8bc9")
    assert event.identifier is None and event.state_type is None and not event.state_changed


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"type":"Issue","data":{},"webhookTimestamp":1}', b'{"action":"update","type":"Issue",'
     b'"data":{}}', b'{"action":"update","type":"Issue","data":[],"webhookTimestamp":1}'],
)  # fmt: skip
def test_parse_webhook_rejects_malformed(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_webhook(body)


def test_fake_works_without_published_schema(tmp_path: Path) -> None:
    with FakeLinear(schema_path=tmp_path / "absent.graphql") as server, LinearClient("k", base_url=server.url) as c:
        team = server.add_team("FB")
        ref = c.create_issue(issue_id=new_id(), team_id=team, title="T", description="D")
        assert ref.identifier == "FB-1"
        bad = httpx.post(server.url, json={"query": '{ issue(id: "x") { nope } }'})
        assert bad.status_code == 400  # still validated, against the subset
