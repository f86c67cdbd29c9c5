"""The real server on this machine: start `eqsms serve` in the background, wait until it is ready, call it, stop it.

Used by the end of `make run` (``serving.smoke``), the end-to-end tests and the serving benchmark.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from eqsms.settings import REPO_ROOT

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start(
    port: int, env: dict[str, str], log: Path, args: list[str] | None = None, cwd: Path = REPO_ROOT
) -> subprocess.Popen:
    """`eqsms serve` (or the given command) in the background, its output in ``log``, in its own process group."""
    command = args or [sys.executable, "-m", "eqsms.cli", "serve", "--host", HOST, "--port", str(port)]
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def client_key(settings) -> str | None:
    """The key this machine's commands send to a service (``api_key`` in settings, ``EQSMS_API_KEY``), if any."""
    return settings.api_key.get_secret_value() if settings.api_key else None


def call(url: str, body: dict | None = None, timeout: float = 30, key: str | None = None) -> tuple[int, dict]:
    """POST ``body`` as JSON (GET when None), with ``key`` as ``Authorization: Bearer`` when given; the status and
    the decoded JSON answer, errors included."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def wait_ready(base: str, process: subprocess.Popen, timeout: float = 90, path: str = "/readyz") -> None:
    """Until ``path`` (BentoML's /readyz; /ping for `mlflow models serve`) answers 200; raises if the server exits
    first or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{base}{path}", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the server was not ready after {timeout:.0f} s")


def stop(process: subprocess.Popen, timeout: float = 20) -> int:
    """SIGTERM to the server's pid (BentoML stops its workers); if it hangs, its process group and every process
    below it are killed (circus starts each worker in a group of its own, which the group's kill does not reach)."""
    import psutil

    if process.poll() is None:
        try:
            below = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            below = []
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)
        for child in below:  # a worker its arbiter left behind (normally gone with it)
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
    return process.returncode
