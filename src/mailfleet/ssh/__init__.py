"""SSH to fleet hosts: pinned keys, bounded parallelism, every outcome collected."""

from mailfleet.ssh.connect import connect, fetch_host_key, fingerprint, open_connection
from mailfleet.ssh.pool import Outcome, run_on_hosts

__all__ = ["Outcome", "connect", "fetch_host_key", "fingerprint", "open_connection", "run_on_hosts"]
