"""Progress bars show on a terminal and stay quiet when piped (lowvalue.progress)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

SCRIPT = ("from lowvalue.progress import bar, steps\n"
          "import time\n"
          "with bar('outer step', 2) as advance:\n"
          "    for _ in steps(range(3), 'inner step'):\n"
          "        time.sleep(0.2)\n"
          "    advance()\n"
          "print('done')\n")


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "100", "TERM": "xterm"}


def test_quiet_when_piped() -> None:
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=_env(), timeout=60)
    assert r.returncode == 0 and r.stdout == "done\n" and r.stderr == ""


def _on_a_terminal(env: dict[str, str]) -> bytes:
    """What the script writes to a pseudo-terminal (stdout and stderr both)."""
    leader, follower = pty.openpty()
    p = subprocess.Popen([sys.executable, "-c", SCRIPT], stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert p.wait(timeout=60) == 0
    os.close(leader)
    return seen


def test_a_bar_on_a_terminal() -> None:
    seen = _on_a_terminal(_env())
    assert b"outer step" in seen and b"inner step" in seen and b"done" in seen


def test_off_by_environment() -> None:
    seen = _on_a_terminal({**_env(), "LOWVALUE_PROGRESS": "0"})
    assert b"step" not in seen and b"done" in seen
