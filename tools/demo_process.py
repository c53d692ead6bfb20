"""`python -m tools.demo` as a child on free ports in its own instance folder, for the screenshots and the demo's test.

The child gets its own process group, as a terminal's foreground job has, so `interrupt()`
is what Ctrl-C does.
"""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY = "i-Reserve demo is running"
START_SECONDS = 120


@dataclass
class RunningDemo:
    process: subprocess.Popen
    portal: str
    graph: str
    email: str
    password: str

    def interrupt(self, timeout=60):
        """Ctrl-C to the demo's process group; returns what it printed from then on."""
        os.killpg(self.process.pid, signal.SIGINT)
        rest, _ = self.process.communicate(timeout=timeout)
        return rest


@contextlib.contextmanager
def running_demo(instance):
    """Start the demo with *instance* as its instance folder; yield a :class:`RunningDemo` once it is up."""
    portal_port, graph_port = _free_port(), _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.demo"],
        cwd=ROOT,
        env={
            **os.environ,
            "INSTANCE_PATH": str(instance),
            "BIND": f"127.0.0.1:{portal_port}",
            "DEMO_GRAPH_PORT": str(graph_port),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        printed = ""
        deadline = time.monotonic() + START_SECONDS
        while READY not in printed or "sign in as" not in printed:
            line = process.stdout.readline()
            if (not line and process.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(f"The demo did not start:\n{printed}")
            printed += line
        credentials = re.search(r"sign in as (\S+) / (\S+)", printed)
        yield RunningDemo(
            process, f"http://127.0.0.1:{portal_port}", f"http://127.0.0.1:{graph_port}", *credentials.groups()
        )
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
