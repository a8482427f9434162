"""FakeSlack driven only through the real slack_sdk.WebClient over real HTTP, as the bot will use it."""

import threading
import urllib.error
import urllib.request
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import default_retry_handlers
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

from bot.console.fake_slack import FakeSlack


@pytest.fixture
def fake():
    with FakeSlack() as server:
        server.add_channel("C0SHARED", "ext-acme", is_ext_shared=True)
        server.add_channel("C0TRIAGE", "feedback-triage", is_private=True)
        server.add_user("U0STAFF", "sam", real_name="Sam Staff")
        server.add_user("U0CUST", "cara", team_id="T0ACME", real_name="Cara Customer")
        yield server


@pytest.fixture
def client(fake):
    return WebClient(token="xoxb-test", base_url=fake.url)


def _error(excinfo: pytest.ExceptionInfo[SlackApiError]) -> str:
    return excinfo.value.response["error"]


def test_auth_test_and_team_info(fake, client):
    auth = client.auth_test()
    assert (auth["team_id"], auth["user_id"], auth["bot_id"]) == ("T0OURTEAM", "U0BOT", "B0BOT")
    assert auth["url"] == "https://ourco.slack.com/" and auth["is_enterprise_install"] is False
    assert client.team_info()["team"]["domain"] == "ourco"
    assert auth.headers["Content-Type"] == "application/json; charset=utf-8"


def test_auth_errors_and_unknown_method(fake):
    with pytest.raises(SlackApiError) as missing:
        WebClient(base_url=fake.url).auth_test()
    with pytest.raises(SlackApiError) as bad:
        WebClient(token="nope", base_url=fake.url).auth_test()
    with pytest.raises(SlackApiError) as unknown:
        WebClient(token="xoxb-test", base_url=fake.url).api_call("made.up")
    assert [_error(e) for e in (missing, bad, unknown)] == ["not_authed", "invalid_auth", "unknown_method"]
    assert unknown.value.response.status_code == 200
    in_form = WebClient(base_url=fake.url).api_call("auth.test", params={"token": "xoxp-in-form"})
    assert in_form["ok"] and "token" not in fake.calls[-1].args


def test_conversations_info(fake, client):
    shared = client.conversations_info(channel="C0SHARED")["channel"]
    assert shared["is_ext_shared"] and shared["is_shared"] and shared["is_member"] and not shared["is_private"]
    assert client.conversations_info(channel="C0TRIAGE")["channel"]["is_private"] is True
    with pytest.raises(SlackApiError) as exc:
        client.conversations_info(channel="C0NOPE")
    assert _error(exc) == "channel_not_found"


def test_post_history_replies_with_metadata(fake, client):
    parent = fake.post_as_user("C0SHARED", "U0CUST", "Export to CSV is broken")
    assert parent["team"] == parent["user_team"] == "T0ACME" and parent["blocks"][0]["type"] == "rich_text"
    meta = {"event_type": "feedback_receipt", "event_payload": {"feedback_id": 7}}
    sent = client.chat_postMessage(channel="C0SHARED", text="Thanks!", thread_ts=parent["ts"], metadata=meta)
    assert sent["message"]["bot_id"] == "B0BOT" and sent["message"]["user"] == "U0BOT"
    assert float(sent["ts"]) > float(parent["ts"])
    assert [c.method for c in fake.calls] == ["chat.postMessage"]  # post_as_user is not a call

    history = client.conversations_history(channel="C0SHARED")["messages"]
    assert [m["ts"] for m in history] == [parent["ts"]]  # replies stay in the thread
    assert history[0]["reply_count"] == 1 and history[0]["reply_users"] == ["U0BOT"]

    plain = client.conversations_replies(channel="C0SHARED", ts=parent["ts"])
    assert [m["ts"] for m in plain["messages"]] == [parent["ts"], sent["ts"]] and not plain["has_more"]
    assert "metadata" not in plain["messages"][1]
    full = client.conversations_replies(channel="C0SHARED", ts=parent["ts"], include_all_metadata=True)
    assert full["messages"][1]["metadata"] == meta
    assert full["response_metadata"]["next_cursor"] == ""


def test_history_bounds_and_limit(fake, client):
    ts = [fake.post_as_user("C0SHARED", "U0CUST", f"m{i}")["ts"] for i in range(4)]
    page = client.conversations_history(channel="C0SHARED", limit=2)
    assert [m["text"] for m in page["messages"]] == ["m3", "m2"] and page["has_more"] is True
    window = client.conversations_history(channel="C0SHARED", oldest=ts[0], latest=ts[2], inclusive=True)
    assert [m["text"] for m in window["messages"]] == ["m2", "m1", "m0"]
    assert len(client.conversations_history(channel="C0SHARED", oldest=ts[0])["messages"]) == 3


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_post_message_errors(fake, client):
    cases: list[tuple[dict[str, Any], str]] = [
        ({"channel": "C0NOPE", "text": "x"}, "channel_not_found"),
        ({"channel": "C0TRIAGE"}, "no_text"),
        ({"channel": "C0TRIAGE", "text": "x" * 40_001}, "msg_too_long"),
        ({"channel": "C0TRIAGE", "text": "x", "blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
    ]
    for kwargs, error in cases:
        with pytest.raises(SlackApiError) as exc:
            client.chat_postMessage(**kwargs)
        assert _error(exc) == error
    assert [c.response["error"] for c in fake.calls_to("chat.postMessage")] == [e for _, e in cases]


def test_post_to_user_id_lands_in_a_dm(fake, client):
    sent = client.chat_postMessage(channel="U0STAFF", text="Draft reply ready")
    assert sent["channel"].startswith("D") and client.conversations_info(channel=sent["channel"])["channel"]["is_im"]
    assert fake.messages(sent["channel"])[0]["text"] == "Draft reply ready"


def test_update_and_delete(fake, client):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*New*"}}]
    sent = client.chat_postMessage(channel="C0TRIAGE", text="New", blocks=blocks)
    client.chat_update(channel="C0TRIAGE", ts=sent["ts"], text="Assigned", blocks=[])
    [msg] = fake.messages("C0TRIAGE")
    assert (msg["text"], msg["blocks"], msg["ts"]) == ("Assigned", [], sent["ts"])
    with pytest.raises(SlackApiError) as exc:
        client.chat_update(channel="C0TRIAGE", ts="1.000001", text="x")
    assert _error(exc) == "message_not_found"
    client.chat_delete(channel="C0TRIAGE", ts=sent["ts"])
    assert fake.messages("C0TRIAGE") == []


def test_ephemeral_is_recorded_not_in_history(fake, client):
    resp = client.chat_postEphemeral(channel="C0SHARED", user="U0CUST", text="Only you can see this")
    assert resp["message_ts"] and fake.messages("C0SHARED") == []
    assert fake.ephemerals[0]["user"] == "U0CUST" and fake.ephemerals[0]["text"] == "Only you can see this"


def test_reactions(fake, client):
    msg = fake.post_as_user("C0SHARED", "U0CUST", "please add SSO")
    client.reactions_add(channel="C0SHARED", timestamp=msg["ts"], name="eyes")
    fake.react_as_user("C0SHARED", msg["ts"], "U0STAFF", "eyes")
    assert fake.reactions("C0SHARED", msg["ts"]) == [{"name": "eyes", "users": ["U0BOT", "U0STAFF"], "count": 2}]
    got = client.reactions_get(channel="C0SHARED", timestamp=msg["ts"])
    assert got["message"]["reactions"][0]["count"] == 2
    for kwargs, error in [
        ({"timestamp": msg["ts"], "name": "eyes"}, "already_reacted"),
        ({"timestamp": "1.000001", "name": "eyes"}, "message_not_found"),
        ({"timestamp": msg["ts"], "name": ""}, "invalid_name"),
    ]:
        with pytest.raises(SlackApiError) as exc:
            client.reactions_add(channel="C0SHARED", **kwargs)
        assert _error(exc) == error
    client.reactions_remove(channel="C0SHARED", timestamp=msg["ts"], name="eyes")
    assert fake.reactions("C0SHARED", msg["ts"])[0]["users"] == ["U0STAFF"]


def test_views_open_update_publish(fake, client):
    modal = {
        "type": "modal",
        "callback_id": "feedback_modal",
        "private_metadata": '{"c": "C0SHARED"}',
        "title": {"type": "plain_text", "text": "Feedback"},
        "submit": {"type": "plain_text", "text": "Send"},
        "blocks": [{"type": "input", "block_id": "b", "label": {"type": "plain_text", "text": "What?"}}],
    }
    opened = client.views_open(trigger_id="123.456.abc", view=modal)["view"]
    assert opened["id"].startswith("V") and opened["hash"] and opened["state"] == {"values": {}}
    assert opened["callback_id"] == "feedback_modal" and opened["private_metadata"] == '{"c": "C0SHARED"}'
    assert fake.views[opened["id"]]["blocks"] == modal["blocks"]

    updated = client.views_update(view_id=opened["id"], view={**modal, "blocks": []}, hash=opened["hash"])
    assert updated["view"]["id"] == opened["id"] and fake.views[opened["id"]]["blocks"] == []
    with pytest.raises(SlackApiError) as exc:
        client.views_update(view_id="V0MISSING", view=modal)
    assert _error(exc) == "not_found"
    with pytest.raises(SlackApiError) as exc:
        client.views_open(trigger_id="", view=modal)
    assert _error(exc) == "invalid_arguments"

    home = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Hi"}}]}
    published = client.views_publish(user_id="U0STAFF", view=home)["view"]
    assert published["type"] == "home" and fake.views["home:U0STAFF"]["blocks"] == home["blocks"]


def test_form_encoded_json_fields_are_decoded(fake, client):
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "T"}, "blocks": []}
    client.api_call("views.open", params={"trigger_id": "1.2.x", "view": '{"type": "modal", "blocks": []}'})
    client.api_call("views.push", http_verb="GET", params={"trigger_id": "1.2.x", "view": str(modal).replace("'", '"')})
    assert [c.args["view"]["type"] for c in fake.calls] == ["modal", "modal"]


def test_permalink(fake, client):
    parent = fake.post_as_user("C0SHARED", "U0CUST", "hello")
    reply = client.chat_postMessage(channel="C0SHARED", text="hi", thread_ts=parent["ts"])
    top = client.chat_getPermalink(channel="C0SHARED", message_ts=parent["ts"])["permalink"]
    assert top == f"https://ourco.slack.com/archives/C0SHARED/p{parent['ts'].replace('.', '')}"
    threaded = client.chat_getPermalink(channel="C0SHARED", message_ts=reply["ts"])["permalink"]
    assert threaded.endswith(f"?thread_ts={parent['ts']}&cid=C0SHARED")


def test_users_info_marks_strangers(fake, client):
    staff = client.users_info(user="U0STAFF")["user"]
    cust = client.users_info(user="U0CUST")["user"]
    assert staff["team_id"] == "T0OURTEAM" and "is_stranger" not in staff
    assert cust["team_id"] == "T0ACME" and cust["is_stranger"] is True
    assert cust["profile"]["real_name"] == "Cara Customer" and cust["is_restricted"] is False
    with pytest.raises(SlackApiError) as exc:
        client.users_info(user="U0GHOST")
    assert _error(exc) == "user_not_found"


def test_usergroups_and_members(fake, client):
    fake.add_usergroup("S0STAFF", "cs-team", ["U0STAFF"])
    assert client.usergroups_users_list(usergroup="S0STAFF")["users"] == ["U0STAFF"]
    with pytest.raises(SlackApiError) as exc:
        client.usergroups_users_list(usergroup="S0NOPE")
    assert _error(exc) == "no_such_subteam"
    fake.post_as_user("C0SHARED", "U0CUST", "hi")
    assert client.conversations_members(channel="C0SHARED")["members"] == ["U0BOT", "U0CUST"]


def test_429_surfaces_with_retry_after_and_is_not_retried(fake, client):
    assert [type(h) for h in default_retry_handlers()] == [ConnectionErrorRetryHandler]
    fake.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as exc:
        client.chat_postMessage(channel="C0TRIAGE", text="card")
    assert exc.value.response.status_code == 429 and exc.value.response.headers["Retry-After"] == "7"
    assert _error(exc) == "ratelimited"
    assert len(fake.calls_to("chat.postMessage")) == 1 and fake.messages("C0TRIAGE") == []
    assert client.chat_postMessage(channel="C0TRIAGE", text="card")["ok"]  # the failure was used up


def test_5xx_and_scripted_ok_false(fake, client):
    fake.fail_next("chat.update", status=503)
    fake.fail_next("chat.update", status=500, error="internal_error")
    fake.fail_next("reactions.add", error="ratelimited", times=2)
    for status in (503, 500):
        with pytest.raises(SlackApiError) as exc:
            client.chat_update(channel="C0TRIAGE", ts="1.000001", text="x")
        assert exc.value.response.status_code == status
    for _ in range(2):
        with pytest.raises(SlackApiError) as exc:
            client.reactions_add(channel="C0TRIAGE", timestamp="1.000001", name="eyes")
        assert exc.value.response.status_code == 200 and _error(exc) == "ratelimited"
    assert [c.status for c in fake.calls] == [503, 500, 200, 200]
    fake.reset_calls()
    assert fake.calls == []


def test_files_upload_v2_round_trip(fake, client):
    png = b"\x89PNG\r\n\x1a\nfake-chart"
    resp = client.files_upload_v2(
        channel="C0TRIAGE", content=png, filename="digest.png", title="Weekly", initial_comment="Digest"
    )
    assert resp["file"]["id"].startswith("F") and resp["file"]["title"] == "Weekly"
    [upload] = fake.uploads
    assert (upload["content"], upload["filename"], upload["channel"]) == (png, "digest.png", "C0TRIAGE")
    assert upload["initial_comment"] == "Digest"
    assert fake.messages("C0TRIAGE")[0]["files"][0]["id"] == resp["file"]["id"]
    assert [c.method for c in fake.calls] == ["files.getUploadURLExternal", "files.completeUploadExternal"]


def test_unknown_upload_target_is_404(fake):
    req = urllib.request.Request(fake.url.replace("/api/", "/upload/v1/F0NOPE"), data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5)
    assert exc.value.code == 404


def test_concurrent_posts_get_distinct_increasing_ts(fake):
    results: list[str] = []
    lock = threading.Lock()

    def post(n: int) -> None:
        worker = WebClient(token="xoxb-test", base_url=fake.url)
        for i in range(5):
            ts = worker.chat_postMessage(channel="C0TRIAGE", text=f"{n}-{i}")["ts"]
            with lock:
                results.append(ts)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == len(set(results)) == 40
    stored = [m["ts"] for m in fake.messages("C0TRIAGE")]
    assert stored == sorted(stored, key=float) and len(fake.calls) == 40


def test_url_requires_start():
    with pytest.raises(RuntimeError):
        _ = FakeSlack().url
