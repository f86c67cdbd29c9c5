"""A real `eqsms serve` for the tests that need one: started on a free loopback port with the given environment,
waited for, and stopped; a server that does not come up fails the test with the end of its log."""

from __future__ import annotations

import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from serving.local import HOST, call, free_port, start, stop, wait_ready


@dataclass
class Server:
    base: str
    process: subprocess.Popen
    log: Path

    def get(self, path: str) -> dict:
        status, answer = call(f"{self.base}{path}")
        assert status == 200, answer
        return answer

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.base}{path}", timeout=30) as response:
            return response.read().decode()

    def post(self, path: str, body: dict) -> dict:
        status, answer = call(f"{self.base}{path}", body)
        assert status == 200, answer
        return answer

    def stop(self) -> int:
        return stop(self.process)


def serve(env: dict[str, str], log: Path, timeout: float = 120) -> Server:
    """`eqsms serve` with ``env``, its output in ``log``, once it is ready."""
    port = free_port()
    process = start(port, env, log)
    base = f"http://{HOST}:{port}"
    try:
        wait_ready(base, process, timeout=timeout)
    except (RuntimeError, TimeoutError) as err:
        stop(process)
        pytest.fail(f"{err}\n{log.read_text()[-4000:]}")
    return Server(base, process, log)


class Clients:
    """Client threads (``self.threads``) started on entering and, on leaving, told to stop (``self.stopped``) and
    joined, each for at most ``join_seconds``."""

    join_seconds = 60.0

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        for t in self.threads:
            t.join(timeout=self.join_seconds)
