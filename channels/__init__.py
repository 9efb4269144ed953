"""Where people talk, as `platforms/` is where tickets live: Slack, Microsoft Teams, e-mail, a signed webhook.

Each channel module renders a `Message` and sends it in one request; it knows nothing of the store. The
outbox in `connector/outbox.py` decides when to send, retries, remembers threads and audits every send.
A channel is registered in one place (`registry.py`).
"""

from __future__ import annotations

from .errors import ChannelError, RejectedByChannel, TransientChannelError
from .message import Message, Receipt

__all__ = ["ChannelError", "Message", "Receipt", "RejectedByChannel", "TransientChannelError"]
