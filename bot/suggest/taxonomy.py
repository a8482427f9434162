"""The label vocabulary: feedback types, default themes and chatter, with descriptions, prototypes, aliases."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class LabelSpec:
    """One label: a description and prototype sentences for the zero-shot prior, plus matching aliases."""

    name: str
    description: str
    examples: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)

    def matches(self, label: str) -> bool:
        """Case-, separator- and plural-insensitive: "Bugs", "kind/bug", "feature_request" all match."""
        names = {_norm(n) for n in (self.name, *self.aliases)}
        key = _norm(label)
        return key in names or key.removesuffix("s") in names or (key.endswith("ies") and key[:-3] + "y" in names)


def _norm(label: str) -> str:
    """Folds label spellings from trackers: prefixes like `type:`/`kind/`, `_`/`-`/`/` separators, case."""
    key = re.sub(r"^(type|kind|label|category|area)\s*[:/]\s*", "", label.strip().casefold())
    return re.sub(r"[\s_\-/]+", " ", key).strip()


# fmt: off
DEFAULT_TYPES: list[LabelSpec] = [
    LabelSpec("Bug", "Something is broken: an error, crash, failure or wrong behaviour in the product.", [
        "I get an error when I click save.", "The export fails with a 500 error.",
        "The page crashes after the last update.", "Login is broken for our team since this morning.",
        "The sync stopped working and nothing updates.", "The button does nothing when I click it.",
        "Exception thrown when running the command: stack trace below.", "Unexpected behaviour: expected X but got Y.",
        "Regression in the latest release, this used to work.", "Steps to reproduce, actual result, expected result.",
        "The app keeps crashing and I lost my data, please fix.", "It fails with a TypeError on Windows.",
    ], ["bug", "defect", "error", "broken", "incident", "crash", "bug report", "problem report"]),
    LabelSpec("Feature request", "A request for a new capability, option or enhancement that does not exist yet.", [
        "It would be great if we could schedule reports.", "Can you add support for Okta SSO?",
        "Please add an option to export to Excel.", "We would love an API endpoint for this.",
        "Any plans to support dark mode?", "We need the ability to bulk edit users.",
        "Proposal: add a new option to configure this behaviour.", "Support for a new file format would be useful.",
        "Allow users to customise the settings.", "Please add a setting so I can turn this off.",
        "Wish the app had a widget and more themes.", "Enhancement: expose this in the public API.",
    ], ["feature", "feature request", "enhancement", "request", "idea", "improvement", "feature requests",
        "suggestion", "new feature"]),
    LabelSpec("UX issue", "The product works but is confusing, hard to find, slow to use or awkward to navigate.", [
        "It's hard to find where the settings are.", "The navigation is confusing.",
        "It takes too many clicks to create a report.", "The layout is cluttered and hard to read.",
        "I didn't understand what this button does.", "The wording on this screen is unclear.",
    ], ["ux", "ux issue", "usability", "design", "ui", "user experience", "ui/ux", "ux/ui"]),
    LabelSpec("Praise", "Positive feedback: the customer likes something or thanks the team for it.", [
        "Love the new dashboard, great work!", "The new release is fantastic, thank you.",
        "Your support team was amazing.", "This feature saves us hours every week.",
        "Really impressed with how fast this is now.", "Big fan of the new mobile app.",
    ], ["praise", "compliment", "kudos", "positive", "appreciation"]),
    LabelSpec("Content/data issue", "Data or content is wrong, missing, duplicated, out of date or inconsistent.", [
        "The numbers in the report don't match our records.", "Some records are missing after the import.",
        "We see duplicate contacts in the list.", "The revenue totals are wrong for last month.",
        "The help article is out of date.", "Timezones on the events are shifted by an hour.",
    ], ["data", "content", "content/data issue", "data issue", "content issue", "data quality", "documentation",
        "docs", "content/data"]),
    LabelSpec("Question", "The customer asks how to do something or whether something is possible.", [
        "How do I add a new user?", "Is there a way to change the billing date?",
        "Where can I find the API key?", "Does the mobile app support offline mode?",
        "Can someone explain how permissions work?", "What's the difference between admin and editor?",
        "How can I configure this? I couldn't find it in the docs.", "What is the recommended way to do this?",
        "Is this supported, or am I doing something wrong?", "Why does it behave like this? Is it expected?",
        "Any example of how to use this with my setup?", "Which version should I install?",
    ], ["question", "how-to", "how to", "q", "inquiry", "support question", "help", "support"]),
]

DEFAULT_THEMES: list[LabelSpec] = [
    LabelSpec("Reporting", "Dashboards, reports, charts, exports and analytics.", [
        "The dashboard charts", "Exporting a report to CSV", "Scheduled weekly reports", "analytics and metrics",
    ], ["reports", "dashboards", "analytics"]),
    LabelSpec("Onboarding", "Getting started: sign-up, setup, invitations, first use, tutorials and docs.", [
        "Setting up our workspace", "Inviting the team for the first time", "The getting started guide",
        "Importing our data during setup",
    ], ["setup", "getting started"]),
    LabelSpec("Billing", "Invoices, plans, pricing, payments, seats and subscriptions.", [
        "We were charged twice", "The invoice is wrong", "Upgrading our plan", "Adding seats to our subscription",
    ], ["payments", "pricing", "invoices"]),
    LabelSpec("Integrations", "Connections to other tools: Salesforce, HubSpot, Slack, Zapier, webhooks, API.", [
        "The Salesforce sync", "Our HubSpot integration", "Webhooks and the API", "Connecting to Zapier",
        "The CRM sync with Salesforce failed", "Data from the Jira integration", "Syncing with Google Calendar",
    ], ["integration", "api"]),
    LabelSpec("Performance", "Speed, slowness, timeouts, loading times and outages.", [
        "The app is very slow", "Pages take forever to load", "Requests time out", "The service was down",
    ], ["speed", "latency", "outage"]),
    LabelSpec("Mobile", "The iOS and Android mobile apps.", [
        "The iPhone app", "On Android the app", "Push notifications on my phone", "The mobile app crashes",
    ], ["ios", "android", "mobile app"]),
    LabelSpec("Permissions", "Roles, access control, SSO, user management and security.", [
        "Giving a user read-only access", "Admin and editor roles", "Single sign-on with Okta",
        "Restricting who can see a project",
    ], ["access", "roles", "sso", "security"]),
]

CHATTER_SPECS: list[LabelSpec] = [
    LabelSpec("feedback", "A customer describes a problem, request, question or opinion about the product.", [
        "The export is broken again.", "Could you add a filter by owner?", "How do I reset my password?",
        "The new dashboard is great.", "Numbers in the report look wrong.", "The app is really slow today.",
    ]),
    LabelSpec("chatter", "Small talk: thanks, acknowledgements, greetings, scheduling and logistics.", [
        "thanks!", "ok", "sounds good", "got it, thank you", "hi team", "good morning everyone",
        "can we move the call to 3pm?", "see you tomorrow", "I'll be out on Friday", "lol",
        "let me check and get back to you", "sent you the invite", "np", "welcome to the channel!",
    ]),
]
# fmt: on
