"""What hosts print during an upgrade, read back; and which commit a rollback goes to."""

from __future__ import annotations

from mailfleet.upgrade.ops_ssh import _rollback_target
from mailfleet.upgrade.parse_remote import parse_app_info_version, parse_backup_listing, parse_queue_counts

APP_INFO = """<?php
  $MAILCOW_GIT_VERSION="2026-07a";
  $MAILCOW_LAST_GIT_VERSION="";
  $MAILCOW_GIT_COMMIT="031ed8cfa72ce1962ac10d828e93f06b9cb6a78c";
?>
"""


def test_app_info_version():
    assert parse_app_info_version(APP_INFO) == "2026-07a"
    assert parse_app_info_version('$MAILCOW_GIT_VERSION="";') is None
    assert parse_app_info_version("cat: data/web/inc/app_info.inc.php: No such file or directory") is None


def test_backup_listing_keeps_only_backup_folders_sorted():
    listing = "mailcow-2026-11-29-01-30-38\nlost+found\nmailcow-2026-11-28-23-00-01\nmailcow-notes.txt\n"
    assert parse_backup_listing(listing) == ["mailcow-2026-11-28-23-00-01", "mailcow-2026-11-29-01-30-38"]


def test_queue_counts_per_queue():
    text = "\n".join([
        '{"queue_name": "active", "queue_id": "A1", "recipients": []}',
        '{"queue_name": "deferred", "queue_id": "B2", "recipients": []}',
        '{"queue_name": "deferred", "queue_id": "C3", "recipients": []}',
        '{"queue_name": "hold", "queue_id": "D4", "recipients": []}',
        "Mail queue is empty",
        '{"queue_name": broken',
    ])
    assert parse_queue_counts(text) == {"active": 1, "deferred": 2, "hold": 1}
    assert parse_queue_counts("") == {}


def test_rollback_goes_to_the_before_update_commit_made_on_top_of_the_starting_point():
    log = "bbbb2222 aaaa1111\n9999old0 5555old0\n"        # newest first: "<commit> <parent>"
    assert _rollback_target(log, "aaaa1111") == "bbbb2222"


def test_an_older_before_update_commit_is_never_used_for_this_update():
    # update.sh failed before committing: the newest "Before update" is from last month's update.
    log = "9999old0 5555old0\n"
    assert _rollback_target(log, "aaaa1111") == "aaaa1111"


def test_without_a_starting_point_the_newest_before_update_commit_is_used():
    assert _rollback_target("bbbb2222 aaaa1111\n", None) == "bbbb2222"
    assert _rollback_target("", None) is None
