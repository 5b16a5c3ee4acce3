"""Runs the real sandbox-ui binary (and, through the SDK tests' helper, sandbox-api)
for the crash test and the benchmark, and talks to it like the chat page does."""

import importlib.util
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("api_servers", REPO / "sandbox-api/tests/sdk/conftest.py")
api_servers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api_servers)

TARGET = api_servers.TARGET
UI_BINARY = Path(os.environ.get("SANDBOX_UI_BIN", TARGET / "release" / "sandbox-ui"))
USER, PASSWORD = "admin", "crash-test-password"


def create_user(data: Path, name: str = USER, password: str = PASSWORD) -> None:
    subprocess.run([str(UI_BINARY), "user", "set", name, "--data-dir", str(data)],
                   input=password + "\n", text=True, check=True, capture_output=True)


class Ui:
    """A running sandbox-ui process; `kill()` is kill -9, `start()` starts it again."""

    def __init__(self, data: Path, api_url: str, api_key: str | None = None, port: int | None = None):
        self.data, self.api_url, self.api_key = data, api_url, api_key
        self.port = port or api_servers.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = data.parent / f"sandbox-ui-{self.port}.log"
        self.proc = None
        self.start()

    def start(self) -> float:
        args = [str(UI_BINARY), "--listen", f"127.0.0.1:{self.port}", "--api-url", self.api_url,
                "--data-dir", str(self.data)]
        env = {**os.environ, "RUST_LOG": "info"}
        if self.api_key:
            env["SANDBOX_UI_API_KEY"] = self.api_key
        t0 = time.monotonic()
        self.proc = subprocess.Popen(args, stdout=open(self.log_path, "a"), stderr=subprocess.STDOUT, env=env)
        deadline = t0 + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sandbox-ui exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"sandbox-ui did not start: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        return self.proc.returncode

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))


class Browser:
    """A logged-in client doing what the page's script does."""

    def __init__(self, base: str, user: str = USER, password: str = PASSWORD):
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=30)
        page = self.http.get("/login").text
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
        r = self.http.post("/login", data={"username": user, "password": password, "csrf": token, "next": "/"})
        assert r.status_code == 303, r.text
        self.csrf = re.search(r'name="csrf-token" content="([0-9a-f]+)"', self.http.get("/").text).group(1)

    def chat_events(self, body: dict):
        """Yields the UI's SSE events for a send."""
        with self.http.stream("POST", "/app/chat", json=body, headers={"x-csrf-token": self.csrf}) as r:
            assert r.status_code == 200, r.read()
            for line in r.iter_lines():
                if line.startswith("data: "):
                    yield json.loads(line[6:])

    def export(self, conversation: int) -> dict:
        r = self.http.get(f"/c/{conversation}/export.json")
        assert r.status_code == 200, r.text
        return r.json()
