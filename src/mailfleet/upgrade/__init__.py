"""Rolling Mailcow upgrades: plan (pure) -> journal -> run per host, halt and roll back on failure.

``plan`` / ``plan_windows`` / ``rules`` decide who goes when; ``journal`` / ``parse_journal``
record and replay every step; ``run`` drives the steps through a ``HostOps``; ``ops_ssh`` and
``probes`` are the steps on real hosts. See docs/upgrade.md.
"""
