"""The console's world: our team, one customer organisation, their people and channels (the tests use it too)."""

from __future__ import annotations

OUR_TEAM, CUSTOMER_TEAM = "T0OURTEAM", "T0CUSTOMER"
USERS = {  # name -> (id, team, real name)
    "alice": ("U0STAFF", OUR_TEAM, "Alice (CSM)"),
    "bob": ("U0STAFF2", OUR_TEAM, "Bob (PM)"),
    "carol": ("U0CUST", CUSTOMER_TEAM, "Carol at Acme"),
    "dave": ("U0CUST2", CUSTOMER_TEAM, "Dave at Acme"),
}
CHANNELS = {  # name -> (id, shared with the customer)
    "acme-shared": ("C0SHARED", True),
    "feedback-triage": ("C0TRIAGE", False),
    "general": ("C0INTERNAL", False),
}
USER_IDS = {uid: name for name, (uid, _, _) in USERS.items()}
CHANNEL_IDS = {cid: name for name, (cid, _) in CHANNELS.items()}
