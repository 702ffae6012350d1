"""The Mailcow API client (over ``requests``) and the SSH tunnel that reaches it.

``open_api(host, inventory)`` is the entry point other components use; ``MailcowClient`` is the
typed client; ``parse_api`` holds the pure rules for reading Mailcow's answers.
"""

from mailfleet.mailcow.client import MailcowClient
from mailfleet.mailcow.tunnel import open_api

__all__ = ["MailcowClient", "open_api"]
