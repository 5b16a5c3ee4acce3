"""kill -9 of sandbox-ui (20 times) and of sandbox-api during streamed answers: every
acknowledged user message survives, each answer keeps at least what was shown, and
the database opens cleanly every time."""

import subprocess

import httpx
import pytest

from ui_process import UI_BINARY, Browser, Ui, api_servers, create_user

ROUNDS = 20


@pytest.fixture(scope="module")
def api():
    server = api_servers.Server(api_servers.FIXTURES / "smollm2-135m-instruct.gguf", "--ctx", "4096")
    yield server
    server.stop()


def send_until_streaming(browser: Browser, conversation, text: str):
    """Sends `text`; returns (conversation id, answer text seen) once the answer streams."""
    body = {"conversation": conversation, "action": "send", "content": text}
    if conversation is None:
        body["settings"] = {"max_tokens": 2000}
    seen, started = "", None
    for ev in browser.chat_events(body):
        if ev["type"] == "start":
            started = ev  # the acknowledgement: the question is on disk
        elif ev["type"] == "delta":
            seen += ev["text"]
            if len(seen) >= 20:
                return started["conversation"], seen
        elif ev["type"] == "done":
            return started["conversation"], seen
    raise AssertionError("the stream ended without done")


def test_kill_9_of_the_ui_during_answers_loses_nothing_acknowledged(api, tmp_path):
    data = tmp_path / "ui"
    create_user(data)
    ui = Ui(data, api.base, api_servers.KEY)
    conversation, shown = None, []
    try:
        for i in range(ROUNDS):
            browser = Browser(ui.base)
            conversation, seen = send_until_streaming(
                browser, conversation, f"Question {i}: write a long poem about the number {i}.")
            shown.append(seen)
            ui.kill()
            ui.start()  # must open the database cleanly, every time
            # The API is free again at once (the killed UI's connection closed).
            for _ in range(100):
                if not httpx.get(api.base + "/ready").json()["queue"]["running"]:
                    break
            else:
                raise AssertionError("the API kept generating for a killed UI")

        messages = Browser(ui.base).export(conversation)["messages"]
        questions = [m["content"] for m in messages if m["role"] == "user"]
        assert questions == [f"Question {i}: write a long poem about the number {i}." for i in range(ROUNDS)]
        answers = [m for m in messages if m["role"] == "assistant"]
        assert len(answers) == ROUNDS
        for seen, answer in zip(shown, answers):
            assert answer["content"].startswith(seen), (seen, answer["content"])
            assert answer["status"] in ("failed", "complete", "truncated"), answer
            if answer["status"] == "failed":
                assert "restarted" in answer["error"]
    finally:
        ui.stop()
    # The database is consistent for other tools too.
    out = subprocess.run([str(UI_BINARY), "user", "list", "--data-dir", str(data)],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["admin  (administrator)"]


def test_kill_9_of_the_api_mid_answer_marks_it_failed_and_keeps_the_text(tmp_path):
    api = api_servers.Server(api_servers.FIXTURES / "smollm2-135m-instruct.gguf", "--ctx", "4096")
    data = tmp_path / "ui"
    create_user(data)
    ui = Ui(data, api.base, api_servers.KEY)
    try:
        browser = Browser(ui.base)
        body = {"conversation": None, "action": "send", "content": "Write a long story.",
                "settings": {"max_tokens": 2000}}
        seen, conversation, done = "", None, None
        for ev in browser.chat_events(body):
            if ev["type"] == "start":
                conversation = ev["conversation"]
            elif ev["type"] == "delta":
                seen += ev["text"]
                if len(seen) >= 20 and api.proc.poll() is None:
                    api.proc.kill()
                    api.proc.wait()
            elif ev["type"] == "done":
                done = ev
        assert done["status"] == "failed"
        assert "stopped answering" in done["error"]
        messages = browser.export(conversation)["messages"]
        assert messages[0]["content"] == "Write a long story."
        assert messages[1]["status"] == "failed"
        assert messages[1]["content"].startswith(seen)
        # The page still answers, and says the model server is gone.
        status = browser.http.get("/app/status").json()
        assert status["state"] == "unreachable"
    finally:
        ui.stop()
        api.stop()
