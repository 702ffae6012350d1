"""The Mailcow emulator's runtime: what runs on a lab host in place of Mailcow's containers.

Stdlib-only (runs under the host's ``/usr/bin/python3``); the emulated
``mailcow-dockerized`` checkout carries a copy under ``data/Dockerfiles/emulator/`` so that
checking out another version changes what runs.
"""
