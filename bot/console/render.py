"""Renders recorded Slack Web API calls as the text a person would see in Slack."""

from __future__ import annotations

import re
import textwrap
from typing import Any

USER_NAMES: dict[str, str] = {}  # filled by the console so selects show names, not ids
QUIET = {
    "auth.test",
    "users.info",
    "conversations.info",
    "conversations.open",
    "conversations.history",
    "conversations.replies",
    "chat.getPermalink",
    "team.info",
    "usergroups.users.list",
    "files.getUploadURLExternal",
}


def _text(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, dict) else str(obj or "")


def _mrkdwn(text: str, users: dict[str, str], channels: dict[str, str]) -> str:
    text = re.sub(r"<@(\w+)>", lambda m: "@" + users.get(m.group(1), m.group(1)), text)
    text = re.sub(r"<#(\w+)(\|[^>]*)?>", lambda m: "#" + channels.get(m.group(1), m.group(1)), text)
    text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r"\2 [\1]", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _element(el: dict[str, Any]) -> str:
    kind = el.get("type", "")
    if kind == "button":
        return f"[{_text(el.get('text'))}]"
    if kind in {"static_select", "users_select", "external_select", "conversations_select"}:
        chosen = _text((el.get("initial_option") or {}).get("text")) or el.get("initial_user") or "choose"
        chosen = "@" + USER_NAMES.get(chosen, chosen) if el.get("initial_user") else chosen
        return f"[{_text(el.get('placeholder')) or kind}: {chosen} ▾]"
    if kind == "overflow":
        return "[⋯]"
    return f"[{kind}]"


def _input_line(block: dict[str, Any]) -> str:
    """A modal input as `Label: field `id` current value`, so the user knows what to `submit`."""
    el = block.get("element", {})
    initial = el.get("initial_value") or _text((el.get("initial_option") or {}).get("text"))
    opt = " (optional)" if block.get("optional") else ""
    shown = _element(el) if "select" in el.get("type", "") else textwrap.shorten(str(initial or ""), 70)
    return f"  {_text(block.get('label'))}{opt}: field `{block.get('block_id')}` {shown}"


def _section_lines(block: dict[str, Any], users: dict[str, str], channels: dict[str, str]) -> list[str]:
    lines = _mrkdwn(_text(block["text"]), users, channels).splitlines() if block.get("text") else []
    lines += ["  " + _mrkdwn(_text(f), users, channels) for f in block.get("fields", [])]
    return lines + (["  " + _element(block["accessory"])] if block.get("accessory") else [])


def _block_lines(block: dict[str, Any], users: dict[str, str], channels: dict[str, str]) -> list[str]:
    """One block as the lines a person would read."""
    kind = block.get("type")
    if kind in {"section", "header"}:
        return _section_lines(block, users, channels)
    if kind == "context":
        return ["  " + " ".join(_mrkdwn(_text(e), users, channels) for e in block.get("elements", []))]
    if kind == "actions":
        return ["  " + " ".join(_element(e) for e in block.get("elements", []))]
    if kind == "input":
        return [_input_line(block)]
    return {"divider": ["  ────────"], "image": [f"  [image: {block.get('alt_text', '')}]"]}.get(str(kind), [])


def render_blocks(blocks: list[dict[str, Any]], users: dict[str, str], channels: dict[str, str]) -> list[str]:
    """One or more text lines per block, in Slack's visual order."""
    return [line for block in blocks for line in _block_lines(block, users, channels)]


def render_call(
    method: str,
    args: dict[str, Any],
    response: dict[str, Any],
    channels: dict[str, str],
    users: dict[str, str],
) -> str | None:
    """A short transcript entry for one Web API call, or None for reads."""
    if method in QUIET and response.get("ok"):
        return None
    if not response.get("ok"):
        return f"  ! {method} failed: {response.get('error')}"
    where = "#" + channels.get(str(args.get("channel")), str(args.get("channel")))
    if method in {"chat.postMessage", "chat.update"}:
        head = f"[{where}{' thread' if args.get('thread_ts') else ''}] Feedback Loop"
        head += " (updated)" if method == "chat.update" else ""
        body = render_blocks(args.get("blocks") or [], users, channels) or [
            _mrkdwn(str(args.get("text")), users, channels)
        ]
        return head + ":\n" + "\n".join("  │ " + line for line in body)
    if method == "reactions.add":
        return f"[{where}] Feedback Loop reacted :{args.get('name')}: to the message {args.get('timestamp')}"
    if method == "chat.postEphemeral":
        return f"[{where}, only visible to @{users.get(str(args.get('user')), args.get('user'))}] {args.get('text')}"
    if method in {"views.open", "views.push", "views.update"}:
        view = response.get("view", {})
        lines = render_blocks(view.get("blocks", []), users, channels)
        return f"[modal] {_text(view.get('title'))}\n" + "\n".join("  │ " + line for line in lines)
    if method == "views.publish":
        lines = render_blocks((args.get("view") or {}).get("blocks", []), users, channels)
        who = users.get(str(args.get("user_id")), args.get("user_id"))
        return f"[App Home of @{who}]\n" + "\n".join("  │ " + line for line in lines)
    if method == "files.completeUploadExternal":
        where = "#" + channels.get(str(args.get("channel_id")), str(args.get("channel_id")))
        files = args.get("files")
        titles = [f.get("title", "") for f in files] if isinstance(files, list) else [str(files)]
        return f"[{where}{' thread' if args.get('thread_ts') else ''}] Feedback Loop shared a file: {', '.join(titles)}"
    return f"[{method}] {where}"
