"""Starts the real sandbox-api binary on the test models for the SDK tests."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
FIXTURES = Path(os.environ.get("AI_SANDBOX_FIXTURES", REPO / ".fixtures"))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
BINARY = Path(os.environ.get("SANDBOX_API_BIN", TARGET / "release" / "sandbox-api"))
KEY = "sk-test-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running sandbox-api process."""

    def __init__(self, model: Path | None, *extra: str, wait_ready: bool = True, env: dict | None = None):
        assert BINARY.is_file(), f"build the binary first: {BINARY}"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"sandbox-api-{self.port}.log"
        self.log = open(self.log_path, "w")
        model_args = ["--model", str(model)] if model else []  # none: the hub model
        args = [str(BINARY), *model_args, "--listen", f"127.0.0.1:{self.port}", "--api-key", KEY, *extra]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        self.bound_after = self._wait("/health", 200, 10)
        if wait_ready:
            self._wait("/ready", 200, 60)

    def _wait(self, path: str, status: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sandbox-api exited with {self.proc.returncode}; log: {self.log_path.read_text()}")
            try:
                if httpx.get(self.base + path, timeout=1).status_code == status:
                    return time.monotonic() - self.started
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{path} did not answer {status} within {timeout}s; log: {self.log_path.read_text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="session")
def smol():
    server = Server(FIXTURES / "smollm2-135m-instruct.gguf", "--ctx", "2048", "--queue-capacity", "4")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mistral():
    server = Server(
        FIXTURES / "tiny-mistral-v0.3.gguf",
        "--ctx",
        "4096",
        "--model-id",
        "mistralai/Mistral-7B-Instruct-v0.3",
        "--strict-model-ids",
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smol_hermes():
    """SmolLM2 with a ChatML template that renders tools the Hermes way."""
    template = REPO / "scripts" / "fixtures" / "templates" / "hermes-tools.jinja"
    server = Server(FIXTURES / "smollm2-135m-instruct.gguf", "--ctx", "2048", "--chat-template-file", str(template))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smol_drafting():
    """SmolLM2 with speculative decoding by prompt lookup."""
    server = Server(FIXTURES / "smollm2-135m-instruct.gguf", "--ctx", "2048", "--draft-tokens", "8")
    yield server
    server.stop()
