"""Accounts and contacts: CSV imports as people export them, Slack Connect mapping, revenue-weighted demand, and
the one Linear comment kept up to date."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from slack_sdk.models.views import View
from sqlalchemy import func, select

from app import main
from bot.accounts import csvfile
from bot.accounts.importer import import_accounts, import_contacts
from bot.accounts.service import enqueue_demand
from bot.console import Console, payloads
from bot.routing.service import refresh_after_import
from storage.db import make_engine, make_sessionmaker, session_scope
from storage.models import Account, AccountTeam, Contact, Feedback
from tests.conftest import payload
from tests.test_capture_scenarios import send
from tests.test_triage import capture, card_message, click, link_linear, submit_modal

ACCOUNTS = (
    "name,domain,external_id,slack_team_ids,plan,tier,arr,currency,owner,unknown column\n"
    "Acme Corp,acme.com,A-1,T0CUSTOMER,Enterprise,Tier 1,150000,USD,U0STAFF,x\n"
    "Globex,globex.com,A-2,T0GLOBEX T0GLOBEX2,Pro,Tier 2,$50k,usd,,y\n"
)


def nobody(email: str) -> str | None:
    return None


def counts(url: str) -> tuple[int, int]:
    with session_scope(make_sessionmaker(make_engine(url))) as s:
        return int(s.scalar(select(func.count(Account.id))) or 0), int(s.scalar(select(func.count(Contact.id))) or 0)


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: t.encode(),
        lambda t: b"\xef\xbb\xbf" + t.encode(),  # UTF-8 with BOM (Excel)
        lambda t: t.encode("utf-16"),  # UTF-16 with its BOM
        lambda t: t.replace(",", ";").encode(),  # semicolons (European Excel)
        lambda t: t.replace(",", "\t").encode(),  # tabs
    ],
)
def test_csv_files_are_read_whatever_the_encoding_or_delimiter(encode) -> None:
    text = ACCOUNTS.replace(",$50k,", ",50000,").replace("T0GLOBEX T0GLOBEX2", "T0GLOBEX")
    table = csvfile.read(encode(text), csvfile.ACCOUNT_COLUMNS, {})
    rows = csvfile.clean(table, ("external_id", "domain"), ("name",))
    assert table.errors == []
    assert [(line, v["name"], v["domain"], str(v["arr"])) for line, v in rows] == [
        (2, "Acme Corp", "acme.com", "150000"), (3, "Globex", "globex.com", "50000")]  # fmt: skip
    assert rows[0][1]["slack_team_ids"] == ["T0CUSTOMER"]


def test_bad_rows_are_named_by_line_column_and_reason() -> None:
    raw = (
        b"Company,Website,ID,Annual Revenue,signup_date\n"
        b"Acme Corp,acme.com,A-1,150k,2024-01-31\n"
        b"Bad,not a domain,A-2,abc,31/01/2024\n"
        b'"Quoted, name",acme.com,A-3,1,\n'
        b",,,,\n"
        b"No name,nameless.io,A-4,,\n"
    )
    mapping = csvfile.parse_map("name=Company,domain=Website,external_id=ID,arr=Annual Revenue")
    table = csvfile.read(raw, csvfile.ACCOUNT_COLUMNS, mapping)
    rows = csvfile.clean(table, ("external_id", "domain"), ("name",))
    assert [line for line, _ in rows] == [2, 6]
    assert "line 3, column 'domain': 'not a domain' is not a domain like acme.com" in table.errors
    assert "line 3, column 'arr': 'abc' is not an amount" in table.errors
    assert any(e.startswith("line 3, column 'signup_date'") for e in table.errors)
    assert "line 4, column 'domain': 'acme.com' repeats line 2" in table.errors
    assert rows[0][1]["arr"] == 150_000
    with pytest.raises(ValueError):
        csvfile.parse_map("name")
    missing = csvfile.read(b"a,b\n1,2\n", csvfile.ACCOUNT_COLUMNS, {"name": "Company"})
    assert missing.errors == ["line 1, column 'Company': not in the header (--map name=...)"]


def test_imports_are_all_or_nothing_and_idempotent(tmp_path: Path, capsys, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("FEEDBACKBOT_CONFIG", str(tmp_path / "none.toml"))
    bad = tmp_path / "bad.csv"
    bad.write_text(ACCOUNTS + "Dup,acme.com,A-9,,,,,,,\n")
    assert main(["accounts", "import", str(bad)]) == 1
    assert "line 4, column 'domain': 'acme.com' repeats line 2" in capsys.readouterr().err
    assert counts(url) == (0, 0)  # nothing written
    assert main(["accounts", "import", str(bad), "--skip-bad-rows"]) == 0
    assert counts(url) == (2, 0)
    good = tmp_path / "accounts.csv"
    good.write_text(ACCOUNTS.replace("Pro,Tier 2,$50k", "Business,Tier 1,$80k"))
    assert main(["accounts", "import", str(good)]) == 0
    assert "0 created, 2 updated" in capsys.readouterr().out
    with session_scope(make_sessionmaker(make_engine(url))) as s:
        globex = s.scalar(select(Account).where(Account.domain == "globex.com"))
        assert globex is not None and (globex.plan, int(globex.arr or 0), globex.currency) == ("Business", 80000, "USD")
        assert sorted(s.scalars(select(AccountTeam.team_id))) == ["T0CUSTOMER", "T0GLOBEX", "T0GLOBEX2"]
    contacts = tmp_path / "contacts.csv"
    contacts.write_bytes("slack_user_id\temail\tname\trole\taccount\tfirst_seen\n"
                         "U0CUST\tcarol@acme.com\tCarol\tChampion\tacme.com\t2026-01-05\n"
                         "\tdan@globex.com\tDan\tAdmin\tA-2\t\n".encode("utf-16"))  # fmt: skip
    assert main(["contacts", "import", str(contacts)]) == 0
    assert main(["contacts", "import", str(contacts)]) == 0
    assert counts(url) == (2, 2)
    capsys.readouterr()
    assert main(["report", "account", "Acme Corp"]) == 0
    ledger = capsys.readouterr().out
    assert ledger.startswith("# Customer ledger: Acme Corp") and "plan: Enterprise" in ledger and "$150k" in ledger
    conflict = tmp_path / "conflict.csv"
    conflict.write_text("name,external_id,domain\nMixed,A-1,globex.com\n")
    assert main(["accounts", "import", str(conflict)]) == 1
    assert "line 2, column 'domain': 'globex.com' belongs to another account (Globex)" in capsys.readouterr().err
    assert main(["report", "account", "initech.com"]) == 2
    assert "no account named 'initech.com'" in capsys.readouterr().err


def test_owner_emails_must_be_staff(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'f.db'}")
    from storage import migrate

    migrate.upgrade(engine)
    with session_scope(make_sessionmaker(engine)) as s:
        raw = ACCOUNTS.replace("U0STAFF", "boss@ourco.example").encode()
        result = import_accounts(s, raw, {}, skip_bad=False, staff_by_email=nobody)
        assert not result.written and result.errors == [
            "line 2, column 'owner': no staff member with the email 'boss@ourco.example'"]  # fmt: skip
        result = import_contacts(s, b"slack_user_id,account\nU0NOBODY,nowhere.io\n", {}, skip_bad=False)
        assert result.errors == ["line 2, column 'account': no account with external id or domain 'nowhere.io'"]


def card_text(bot: Console, fid: int) -> str:
    return json.dumps(card_message(bot, fid)["blocks"], ensure_ascii=False)


def external(bot: Console, user: str, team: str, text: str, channel: str = "C0SHARED") -> Feedback:
    """A Slack Connect message (the documented external message event) captured through the real app."""
    env = payload("slack_event_message_external.json")
    msg = bot.fake.post_as_user(channel, user, text)
    env["event"].update(ts=msg["ts"], event_ts=msg["ts"], text=text, user=user, user_team=team, team=team,
                        source_team=team, channel=channel)  # fmt: skip
    env["event_id"] = f"Ev{msg['ts'].replace('.', '')}"
    send(bot, env)
    bot.settle()
    with bot.bot.deps.transaction() as s:
        return s.scalars(select(Feedback).order_by(Feedback.id.desc())).first()  # type: ignore[return-value]


@pytest.mark.slow
def test_slack_connect_maps_to_accounts_and_demand_counts_each_account_once(bot: Console, tmp_path: Path) -> None:
    bot.fake.other_teams["T0GLOBEX"] = "Globex Inc"
    bot.fake.add_channel("C0GLOBEX", "globex-shared", is_ext_shared=True)
    bot.fake.add_user("U0GLOBEX", "erin", team_id="T0GLOBEX", real_name="Erin at Globex")
    carol = external(bot, "U0CUST", "T0CUSTOMER", "CSV export drops rows with filters")
    dave = external(bot, "U0CUST2", "T0CUSTOMER", "Exports lose rows when a filter is set")
    assert "Acme" in card_text(bot, carol.id)  # team.info's name until an import
    with bot.bot.deps.transaction() as s:
        assert carol.account_id is not None and carol.account_id == s.get(Feedback, dave.id).account_id  # type: ignore[union-attr]
    link_linear(bot, carol.id, "ENG-7")
    link_linear(bot, dave.id, "ENG-7")
    assert "2 requests · 1 account" in card_text(bot, carol.id)  # two people, one account
    erin = external(bot, "U0GLOBEX", "T0GLOBEX", "Please keep filtered rows in exports", channel="C0GLOBEX")
    click(bot, erin.id, "triage.duplicate")
    bot.settle()
    submit_modal(bot, {"original": str(carol.id)})
    bot.settle()
    assert "3 requests · 2 accounts" in card_text(bot, carol.id)  # the merge counts
    comments = list(bot.linear.comments.values())
    assert len(comments) == 1 and "Globex Inc" in comments[0]["body"] and "Acme" in comments[0]["body"]
    with session_scope(bot.bot.deps.sessions) as s:
        raw = ACCOUNTS.replace("T0GLOBEX T0GLOBEX2", "T0GLOBEX").encode()
        result = import_accounts(s, raw, {}, skip_bad=False, staff_by_email=nobody)
        refresh_after_import(s, result.issues, result.items)
    bot.settle()
    card = card_text(bot, carol.id)
    assert "2 accounts · $200k ARR" in card
    [comment] = list(bot.linear.comments.values())  # updated in place, not a second comment
    assert (
        "Acme Corp (Tier 1, $150k ARR): 2 request(s)" in comment["body"]
        and "Globex (Tier 2, $50k ARR)" in comment["body"]
    )
    updates = [op for op in bot.linear.operations() if op in ("CommentCreate", "CommentUpdate")]
    bot.bot.scheduler.run_now("linear-poll")
    with session_scope(bot.bot.deps.sessions) as s:
        enqueue_demand(s, comment["issue_id"])  # nothing changed: the same key, no new call
    bot.settle()
    assert [op for op in bot.linear.operations() if op in ("CommentCreate", "CommentUpdate")] == updates


@pytest.mark.slow
def test_a_customers_thumbs_up_adds_their_account_once_and_staff_thumbs_do_not_count(bot: Console) -> None:
    bot.fake.other_teams["T0GLOBEX"] = "Globex Inc"
    bot.fake.add_user("U0GLOBEX", "erin", team_id="T0GLOBEX", real_name="Erin at Globex")
    bot.fake.add_user("U0GLOBEX2", "frank", team_id="T0GLOBEX", real_name="Frank at Globex")
    carol = capture(bot, "CSV export drops rows with filters")
    link_linear(bot, carol.id, "ENG-7")
    for user in ("U0STAFF", "U0GLOBEX", "U0GLOBEX2", "U0GLOBEX"):  # staff, then two Globex people, one twice
        reaction = payload("slack_event_reaction_added.json")
        reaction["event"].update(user=user, reaction="+1::skin-tone-3")
        reaction["event"]["item"].update(channel="C0SHARED", ts=carol.message_ts)
        reaction["event_id"] = f"Ev{user}{len(bot.fake.calls)}"
        send(bot, reaction)
        bot.settle()
    assert "1 request · 2 accounts" in card_text(bot, carol.id)
    [comment] = list(bot.linear.comments.values())
    assert "Globex Inc: +1 on a request" in comment["body"]


@pytest.mark.slow
def test_a_champion_leaving_tells_the_owner_once_and_shows_in_the_ledger(bot: Console, tmp_path: Path) -> None:
    with session_scope(bot.bot.deps.sessions) as s:
        import_accounts(s, ACCOUNTS.encode(), {}, skip_bad=False, staff_by_email=nobody)
        raw = b"slack_user_id,name,role,account\nU0CUST,Carol,Champion,acme.com\nU0CUST2,Dave,Analyst,acme.com\n"
        import_contacts(s, raw, {}, skip_bad=False)
    for user in ("U0CUST2", "U0CUST", "U0CUST"):  # Dave is not the champion; Carol's event is redelivered
        event = {"type": "member_left_channel", "user": user, "channel": "C0SHARED", "channel_type": "C",
                 "team": "T0OURTEAM"}  # fmt: skip
        bot.send_event(event)
        bot.settle()
    told = [m for m in bot.fake.messages("D0STAFF") if "Champion change" in m.get("text", "")]
    assert len(told) == 1 and "Carol (Champion) left #acme-shared" in told[0]["text"].replace(
        "<#C0SHARED>", "#acme-shared"
    )
    with bot.bot.deps.transaction() as s:
        from bot.reports.ledger import ledger
        from storage import customers

        account = customers.account_lookup(session=s, text="acme.com")
        assert account is not None
        contacts = {line.text for line in ledger(s, account, account.updated_at).sections[0].lines}
    assert any(t.startswith("Carol (Champion, champion): left <#C0SHARED> on") for t in contacts)


@pytest.mark.slow
def test_staff_set_an_items_account_by_hand_and_feedback_logged_for_an_account_counts_for_it(bot: Console) -> None:
    with session_scope(bot.bot.deps.sessions) as s:
        import_accounts(s, ACCOUNTS.encode(), {}, skip_bad=False, staff_by_email=nobody)
    fb = capture(bot, "Our auditors need an export of every login")
    click(bot, fb.id, "triage.account")
    bot.settle()
    assert submit_modal(bot, {"account": "Globex · globex.com"}) == {}
    bot.settle()
    assert "Globex (Pro, Tier 2, $50k ARR)" in card_text(bot, fb.id)
    click(bot, fb.id, "triage.account")
    bot.settle()
    submit_modal(bot, {"new_account": "initech.com"})
    bot.settle()
    assert "*Feedback from" in card_text(bot, fb.id) and "initech.com" in card_text(bot, fb.id)
    click(bot, fb.id, "triage.undo")
    bot.settle()
    assert "Globex (Pro, Tier 2, $50k ARR)" in card_text(bot, fb.id)  # Undo restores the account too
    bot.send_command("alice", "/feedback", "")
    bot.settle()
    fields = {"customer_text": "Dana", "source": "sales_call", "context": "QBR", "account": "Acme Corp · acme.com"}
    submit_modal(bot, fields | {"verbatim": "SSO for contractors"})
    bot.settle()
    with bot.bot.deps.transaction() as s:
        logged = s.scalars(select(Feedback).order_by(Feedback.id.desc())).first()
        acme = s.scalar(select(Account).where(Account.domain == "acme.com"))
        assert logged is not None and acme is not None and logged.account_id == acme.id


def _home_select(bot: Console, name: str, value: str) -> dict:
    """Picks `value` in one of App Home's filter selects (a real block_actions payload) and returns the new view."""
    view = bot.fake.calls_to("views.publish")[-1].args["view"]
    filters = next(b for b in view["blocks"] if b.get("block_id") == "home_filters")
    el = next(e for e in filters["elements"] if e["action_id"] == f"home.filter.{name}")
    body = payload("slack_block_actions.json")
    body.pop("channel", None), body.pop("message", None)
    body.update(container={"type": "view", "view_id": "V0HOME"}, view={**view, "id": "V0HOME", "type": "home"})
    body["actions"] = [payloads.action(el, filters, value)]
    bot.post_signed(urlencode({"payload": json.dumps(body)}), "application/x-www-form-urlencoded")
    bot.settle()
    return bot.fake.calls_to("views.publish")[-1].args["view"]


@pytest.mark.slow
def test_app_home_sorts_the_roadmap_by_arr_and_shows_an_accounts_ledger(bot: Console) -> None:
    with session_scope(bot.bot.deps.sessions) as s:
        import_accounts(s, ACCOUNTS.encode(), {}, skip_bad=False, staff_by_email=nobody)
    small, big = capture(bot, "Please add a dark mode"), capture(bot, "We need SAML single sign-on")
    with session_scope(bot.bot.deps.sessions) as s:
        acme = s.scalar(select(Account).where(Account.domain == "acme.com"))
        globex = s.scalar(select(Account).where(Account.domain == "globex.com"))
        assert acme is not None and globex is not None
        for fid, account in ((small.id, globex), (big.id, acme)):
            row = s.get(Feedback, fid)
            assert row is not None
            row.status, row.account_id = "roadmap", account.id
    send(bot, payload("slack_event_app_home_opened.json"))
    bot.settle()
    view = _home_select(bot, "sort", "Roadmap: most ARR asking")
    View(**view).validate_json()
    text = json.dumps(view)
    assert text.index(f"#{big.id}*") < text.index(f"#{small.id}*")  # Acme's $150k before Globex's $50k
    view = _home_select(bot, "account", "Acme Corp")
    text = json.dumps(view, ensure_ascii=False)
    assert "Customer ledger: Acme Corp" in text and "We need SAML single sign-on" in text


def test_european_files_read_decimal_commas() -> None:
    table = csvfile.read(b"name;domain;arr\nAcme;acme.com;1,5M\nGlobex;globex.com;150.000,50\n",
                         csvfile.ACCOUNT_COLUMNS, {})  # fmt: skip
    rows = csvfile.clean(table, ("external_id", "domain"), ("name",))
    assert [str(v["arr"]) for _, v in rows] == ["1500000.0", "150000.50"]


@pytest.mark.slow
def test_importing_a_team_slack_had_seen_merges_its_people_into_the_imported_account(bot: Console) -> None:
    first = external(bot, "U0CUST", "T0CUSTOMER", "CSV export drops rows with filters")
    link_linear(bot, first.id, "ENG-7")
    with session_scope(bot.bot.deps.sessions) as s:  # Acme Corp claims T0CUSTOMER, which Slack had named "Acme"
        result = import_accounts(s, ACCOUNTS.encode(), {}, skip_bad=False, staff_by_email=nobody)
        refresh_after_import(s, result.issues, result.items)
    second = external(bot, "U0CUST", "T0CUSTOMER", "Exports lose rows when a filter is set")
    link_linear(bot, second.id, "ENG-7")
    assert "2 requests · 1 account · $150k ARR" in card_text(bot, first.id)
    with bot.bot.deps.transaction() as s:  # Slack's "Acme" is kept for old Undo records but no longer offered
        live = s.scalars(select(Account).where(Account.source != "merged").order_by(Account.id))
        assert [a.name for a in live] == ["Acme Corp", "Globex"]
    click(bot, second.id, "triage.undo")  # undoing the link after the merge: no stale account comes back
    bot.settle()
    with bot.bot.deps.transaction() as s:
        assert s.get(Account, s.get(Feedback, second.id).account_id).name == "Acme Corp"  # type: ignore[union-attr]
