"""What each platform's note field reads as markup, and how a value a note template writes is kept
literal there.

A note template is the policy author's text, markup included (`[~accountid:…]` mentions someone on
Jira). The values it writes are not: a ticket's title, a requester's reply, a label come from whoever
raised the ticket. Written into a Jira comment (REST API v2: wiki markup) a title such as
`[verify your account|https://evil.example]` became a link in a note the bot signed, and
`!https://evil.example/p.png!` an image every agent's browser fetched; in a ServiceNow journal field
`[code]…[/code]` is HTML; Zendesk reads a comment's `body` as Markdown, where `[text](url)` is a link
and `![](url)` an image. Each value a note template writes is escaped for its ticket's platform
(policies/templates.py applies it); the template's own text is left as written.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Jira's wiki markup: links and mentions [..], images !..!, macros {..}, table cells |, and the
# escape character itself. Emphasis (*bold*, _italic_ …) changes only how a value looks: left alone.
_JIRA_SPECIAL = frozenset("\\[]{}!|")
_JIRA_ESCAPED = str.maketrans({c: "\\" + c for c in _JIRA_SPECIAL})
# ServiceNow's journal fields treat [code]…[/code] as HTML (glide.ui.security.allow_codetag).
_SERVICENOW_CODE_TAG = re.compile(r"\[(\s*/?\s*code\s*)\]", re.IGNORECASE)


def jira_wiki(value: str) -> str:
    """`value` as literal text in Jira wiki markup: each special character backslash-escaped."""
    return value if _JIRA_SPECIAL.isdisjoint(value) else value.translate(_JIRA_ESCAPED)


# Markdown's links and images: [text](url), ![alt](url), [text][ref] and a [ref]: url definition.
_MARKDOWN_LINKS = re.compile(r"\](?=[(\[:])")


def markdown_text(value: str) -> str:
    """`value` with no Markdown link or image in it: a zero-width space after each `]` that would open
    one. The text reads as it did (backslash escapes would show wherever a renderer ignores them), and
    emphasis, which only changes how a value looks, is left alone."""
    return _MARKDOWN_LINKS.sub("]\u200b", value) if "]" in value else value


def servicenow_journal(value: str) -> str:
    """`value` with its [code] tags broken by a zero-width space, so they stay text."""
    return _SERVICENOW_CODE_TAG.sub("[\u200b\\1]", value) if "[" in value else value


NOTE_MARKUP: dict[str, Callable[[str], str]] = {
    "jira": jira_wiki,
    "servicenow": servicenow_journal,
    "zendesk": markdown_text,
}


def note_escape(platform: str) -> Callable[[str], str] | None:
    """How values are kept literal in `platform`'s notes; None where a note is plain text."""
    return NOTE_MARKUP.get(platform)
