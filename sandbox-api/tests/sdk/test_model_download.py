"""sandbox-api fetching its model from a (fake) Hugging Face hub: progress on /ready,
then serving; a restart is ready without touching the hub; `model pull`."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import BINARY, FIXTURES, KEY, REPO, Server

FAKE_HUB = REPO / "scripts/fakehub/fake_hub.py"
MODEL = FIXTURES / "tiny-mistral-v0.3.gguf"


@pytest.fixture()
def hub():
    proc = subprocess.Popen(
        [sys.executable, str(FAKE_HUB), "--serve", f"org/tiny-GGUF=tiny.gguf={MODEL}", "--rate", "1500000"],
        stdout=subprocess.PIPE, text=True,
    )
    url = proc.stdout.readline().strip()
    yield url
    proc.kill()
    proc.wait()


def stats(hub):
    return httpx.get(hub + "/_stats").json()


def hub_env(hub, home):
    return {"HF_ENDPOINT": hub, "HF_HOME": str(home)}


def test_downloads_with_progress_then_serves_then_restarts_offline(hub, tmp_path):
    env = hub_env(hub, tmp_path / "hf")
    args = ("--hf-repo", "org/tiny-GGUF", "--hf-file", "tiny.gguf", "--model-id", "tiny")
    server = Server(None, *args, wait_ready=False, env=env)
    try:
        seen = []
        deadline = time.time() + 60
        while time.time() < deadline:
            r = httpx.get(server.base + "/ready")
            body = r.json()
            seen.append((r.status_code, body["status"], body.get("progress")))
            if r.status_code == 200:
                break
            assert r.status_code == 503 and "Retry-After" in r.headers
            time.sleep(0.1)
        statuses = [s for _, s, _ in seen]
        assert statuses[-1] == "ready"
        progress = [p for _, s, p in seen if s == "downloading" and p is not None]
        assert len(progress) >= 3 and progress == sorted(progress) and progress[-1] > progress[0], seen
        r = httpx.post(server.base + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                       json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
        assert r.status_code == 200
    finally:
        assert server.stop() == 0
    before = stats(hub)
    again = Server(None, *args, env=env)  # waits for ready
    try:
        assert stats(hub) == before, "a restart must not touch the hub"
    finally:
        again.stop()


def test_hub_errors_reach_ready(hub, tmp_path):
    server = Server(None, "--hf-repo", "org/nothing", "--hf-file", "x.gguf", wait_ready=False,
                    env=hub_env(hub, tmp_path / "hf"))
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            body = httpx.get(server.base + "/ready").json()
            if body["status"] == "error":
                break
            time.sleep(0.05)
        assert body["status"] == "error"
        assert "not found on the hub: repository org/nothing" in body["message"]
    finally:
        server.stop()


def test_model_pull_prints_the_path(hub, tmp_path):
    env = {**os.environ, **hub_env(hub, tmp_path / "hf")}
    out = subprocess.run([str(BINARY), "model", "pull", "--hf-repo", "org/tiny-GGUF", "--hf-file", "tiny.gguf"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    path = Path(out.stdout.strip())
    assert path.is_file() and path.read_bytes()[:4] == b"GGUF"
    assert "100.0 %" in out.stderr
    failed = subprocess.run([str(BINARY), "model", "pull", "--hf-repo", "org/none", "--hf-file", "x.gguf"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "not found on the hub" in failed.stderr
