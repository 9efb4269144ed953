"""Personal data out of free text before it is stored: the platforms' error messages quote people.

Jira answers `reporter: User 'jane@customer.example' cannot be assigned.`, Zendesk names the
requester in a validation error, ServiceNow's ACL messages carry a user's e-mail. The audit keeps
the platform's explanation (it is what an operator needs) with the personal data masked: the
same rule as for inputs, where e-mails are never stored in clear (DESIGN.md, audit record).
Reusable by anything that stores text it did not write (audit details, inbox errors, outbox).
"""

from __future__ import annotations

import re

EMAIL_MASK = "<e-mail>"
PHONE_MASK = "<phone>"
IP_MASK = "<ip-address>"

# Local part as mail providers allow it (dots, plus tags; not the quotes messages wrap it in)
# and domain (subdomains, IDNs).
_EMAIL = re.compile(r"[\w.+%-]+@(?:[\w-]+\.)+[\w-]{2,}", re.UNICODE)
# An international number (+ and 7 to 15 digits, separators allowed), or a local one written with
# separators ((030) 1234-5678): ids and counts in messages are bare digits and stay.
_PHONE = re.compile(r"(?<![\w+])(?:\+\d[\d ()./-]{6,20}\d|\(\d{2,5}\)[ ]?\d[\d ./-]{4,14}\d)(?!\w)")
# Not inside a longer dotted number (a version 1.2.3.4.5); a full stop after it ends a sentence.
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?!\d|\.\d)")


def mask_personal_data(text: str | None) -> str | None:
    """`text` with e-mail addresses, phone numbers and IP addresses replaced by placeholders."""
    if not text:
        return text
    if "@" in text:
        text = _EMAIL.sub(EMAIL_MASK, text)
    text = _PHONE.sub(PHONE_MASK, text)
    return _IPV4.sub(IP_MASK, text)
