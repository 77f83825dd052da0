"""Run ``transformers serve`` with the cached SmolLM2 on the CPU, on a free loopback port.

Used by tests/test_transformers_serve.py (a session fixture) and bench/concurrency.py. The server
refuses absolute paths as model ids, so the model folder is linked into a scratch folder and named
bare from there; an empty hub cache keeps ``/v1/models`` from failing, and HF_HUB_OFFLINE=1 keeps
it off the network. Start-up is bounded and the process is always terminated.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["MODEL_NAME", "serve_smollm2"]

MODEL_NAME = "smollm2"
START_TIMEOUT_S = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"transformers serve exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"transformers serve not healthy after {START_TIMEOUT_S:g}s:\n{log_path.read_text()[-3000:]}")


@contextmanager
def serve_smollm2(model_dir: Path, *, extra_args: tuple[str, ...] = ()) -> Iterator[str]:
    """Yield the base URL (``http://127.0.0.1:PORT/v1``) of a running server."""
    with tempfile.TemporaryDirectory(prefix="costar-serve-") as scratch:
        workdir = Path(scratch)
        (workdir / MODEL_NAME).symlink_to(model_dir, target_is_directory=True)
        (workdir / "hub").mkdir()
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(workdir / "hub")}
        port = _free_port()
        command = [
            sys.executable,
            "-m",
            "transformers.cli.transformers",
            "serve",
            MODEL_NAME,
            "--device",
            "cpu",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *extra_args,
        ]
        log_path = workdir / "serve.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_healthy(f"http://127.0.0.1:{port}/health", process, log_path)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
