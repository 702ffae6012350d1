"""The command line's documented default equals the one the SSH operations use."""

from mailfleet.cli import upgrade as upgrade_cli
from mailfleet.upgrade import ops_ssh


def test_backup_dir_default_is_one_value() -> None:
    assert upgrade_cli.DEFAULT_BACKUP_DIR == ops_ssh.DEFAULT_BACKUP_DIR
