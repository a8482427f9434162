"""The console's NPS commands: ask someone, click a score as them, press a button on an NPS DM, send a usage event."""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

from bot.accounts.service import account_of_user
from bot.console import payloads
from bot.console.harness import Console
from bot.console.world import USERS
from bot.nps import report, service
from bot.slack.ids import Action
from storage import customers

NPS_USAGE = "nps send NAME | score NAME N | USER call|resolve|snooze|send|edit|skip|post | run | event NAME EVENT"
NPS_HELP = """  nps send NAME                 ask NAME for NPS now (a DM with 0-10 buttons)
  nps score NAME N              NAME clicks N (the reason modal opens: `submit nps_reason="..."`)
  nps USER VERB                 press a button on the newest NPS DM: call, resolve, snooze (a detractor's task),
                                send, edit, skip (a follow-up to approve), post (a check-in prompt)
  nps run                       who the sweep would ask now, and why (or why not)
  nps event NAME EVENT          a signed usage event (POST /events/usage), e.g. `nps event carol export_used`
  report nps                    NPS by month and plan, with n and 95% intervals"""
STAFF = {"call": Action.NPS_CALL, "resolve": Action.NPS_RESOLVE, "snooze": Action.NPS_SNOOZE, "send": Action.NPS_SEND,
         "edit": Action.NPS_EDIT, "skip": Action.NPS_SKIP, "post": Action.CHECKIN_POST}  # fmt: skip


def nps(c: Console, rest: str) -> None:
    """Dispatches the `nps` subcommands."""
    words = shlex.split(rest)
    if not words:
        raise ValueError(f"usage: {NPS_USAGE}")
    if words[0] == "send" and len(words) == 2:
        _ask(c, words[1])
    elif words[0] == "score" and len(words) == 3 and words[2].isdigit():
        _click(c, words[1], lambda a: a == f"{Action.NPS_SCORE.value}.{int(words[2])}")
    elif words[0] == "run":
        with c.bot.deps.transaction() as session:
            for p in service.plan(session, c.settings, c.bot.deps.now()):
                when = f"on {p.at:%Y-%m-%d}" if p.at else "not now"
                c.out.write(f"  {p.facts.name}: {when} ({p.decision.why})\n")
    elif words[0] == "event" and len(words) == 3:
        _event(c, words[1], words[2])
    elif words[0] in USERS and len(words) == 2 and words[1] in STAFF:
        _click(c, words[0], lambda a: a == STAFF[words[1]].value)
    else:
        raise ValueError(f"usage: {NPS_USAGE}")
    c.settle()


def _ask(c: Console, name: str) -> None:
    uid, team, real = USERS[name]
    deps = c.bot.deps
    account_of_user(deps, uid, team, real, deps.now())  # the contact, as their first message would make it
    with deps.transaction() as session:
        contact = customers.find_contact(session=session, slack_user_id=uid)
        if contact is None:
            raise ValueError(f"{name} is not a contact")
        service.ask_now(session, contact, deps.now())


def _click(c: Console, user: str, wanted: Any) -> None:
    """The newest message with a matching button in any conversation `user` can see (their DMs, our channels)."""
    uid = USERS[user][0]
    for cid in [f"D{uid[1:]}", *_owner_dms(c)]:
        for msg in reversed(c.fake.messages(cid)):
            for block in msg.get("blocks") or []:
                for el in block.get("elements") or []:
                    if isinstance(el, dict) and wanted(el.get("action_id")):
                        base = payloads.interaction("block_actions", user)
                        c.last_user = uid
                        c.send_interaction(base | payloads.card_click(msg, (cid, "directmessage"))
                                           | {"actions": [payloads.action(el, block)]})  # fmt: skip
                        return
    raise ValueError(f"no NPS message with that button for {user}")


def _owner_dms(c: Console) -> list[str]:
    return [f"D{uid[1:]}" for uid, _, _ in USERS.values()] + ["C0TRIAGE"]


def _event(c: Console, name: str, event: str) -> None:
    body = json.dumps({"contact": USERS[name][0], "event": event, "time": f"{c.bot.deps.now():%Y-%m-%dT%H:%M:%S}Z"})
    stamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Feedback-Timestamp": stamp,
               "X-Feedback-Signature": service.usage_signature(c.events_secret, stamp, body.encode())}  # fmt: skip
    resp = c.http.post("/events/usage", content=body, headers=headers)
    c.out.write(f"(usage event: HTTP {resp.status_code} {resp.json()})\n")


def report_nps(c: Console) -> str:
    """`report nps` at the bot's clock, by plan."""
    with c.bot.deps.transaction() as session:
        return report.markdown(session, c.settings, c.bot.deps.now(), "plan")
