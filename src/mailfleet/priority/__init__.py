"""Transactional mail never waits behind bulk: classification, rendering, queue control.

* ``classify``: inventory bulk rules -> Postfix tables and the queue's classifier (pure).
* ``rules``: checks against the measured traps (pure).
* ``render``: ``render_files(fleet, host)`` and ``render_extra_cf(fleet, host)`` for deploy (pure).
* ``parse_queue``: ``postqueue -j`` output -> the queue's shape (pure).
* ``queue``: gather the queue over SSH, pause/resume bulk, push one message (effectful).
"""

from __future__ import annotations

from mailfleet.priority.render import (
    EXECUTABLE_PATHS,
    PriorityConfigError,
    render_extra_cf,
    render_files,
)

__all__ = ["EXECUTABLE_PATHS", "PriorityConfigError", "render_extra_cf", "render_files"]
