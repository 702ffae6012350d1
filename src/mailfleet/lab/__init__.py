"""The lab: a real fleet of hosts on one machine, for trying mailfleet and for its tests.

Each lab host lives in its own network namespace on a private bridge, with its own hostname,
``/etc`` and ``/var`` (overlays), ``/opt``, ``/root``, mail spool and process tree, running a real
OpenSSH server, real Postfix and (on inbound hosts) real Dovecot. ``lifecycle`` brings a lab up
and down, ``status`` reports on it, ``faults`` breaks and heals it. The Mailcow emulator lives
in ``lab.emulator`` and is maintained separately.
"""
