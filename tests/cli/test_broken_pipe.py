"""A reader that leaves early (`mailfleet ... | head -n 1`) ends the command quietly, no traceback."""

from __future__ import annotations

import subprocess
import sys

# stdout is a pipe whose reader is already gone: the first write fails with EPIPE, as it does
# once `head` has read its line and exited.
CHILD = """
import os, sys
read_end, write_end = os.pipe()
os.close(read_end)
os.dup2(write_end, 1)
sys.stdout = os.fdopen(1, "w", buffering=1)
sys.argv = ["mailfleet", "--list"]
from mailfleet.cli.program import main
main()
"""


def test_output_into_a_reader_that_left_ends_with_141_and_no_traceback() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 141, (done.returncode, done.stderr[-500:])
