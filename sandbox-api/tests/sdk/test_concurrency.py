"""One queue, one generation at a time: concurrent clients, disconnects, shutdown."""

import json
import os
import signal
import socket
import threading
import time

from pathlib import Path

import httpx
from conftest import FIXTURES, KEY, Server

H = {"Authorization": f"Bearer {KEY}"}
LONG = {"role": "user", "content": "Count from one to one thousand, one number per line, in words."}
# SmolLM2's end tokens (<|endoftext|>, <|im_end|>) banned: a LONG request really runs for
# its max_tokens (1500 take ~20 s on 2 cores), so a cancellation test cannot pass by the
# answer ending on its own.
ENDLESS = {"0": -100, "2": -100}


def chat(server, max_tokens=8, stream=False, messages=None):
    body = {"model": "x", "messages": messages or [{"role": "user", "content": "Say hello."}], "max_tokens": max_tokens,
            "temperature": 0, "stream": stream}
    return httpx.post(server.base + "/v1/chat/completions", headers=H, json=body, timeout=120)


def queue(server):
    return httpx.get(server.base + "/ready").json()["queue"]


def test_binds_within_a_second(smol):
    assert smol.bound_after < 1.0, f"port answered after {smol.bound_after:.2f}s"


def test_twenty_clients_never_overlap(smol):
    results = [None] * 20
    barrier = threading.Barrier(20)

    def run(i):
        barrier.wait()
        results[i] = chat(smol, max_tokens=8)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {200, 429}, statuses
    ok = [r.json() for r in results if r.status_code == 200]
    limited = [r for r in results if r.status_code == 429]
    assert len(ok) >= 5 and limited, statuses  # capacity 4 waiting + 1 running
    for r in limited:
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
    spans = sorted((body["timings"]["started_at"], body["timings"]["finished_at"]) for body in ok)
    for (s1, f1), (s2, f2) in zip(spans, spans[1:]):
        assert s2 >= f1, f"generations overlap: {s1}-{f1} and {s2}-{f2}"


def test_killed_streaming_client_frees_the_engine(smol):
    body = {"model": "x", "messages": [LONG], "max_tokens": 1500, "temperature": 0, "logit_bias": ENDLESS, "stream": True}
    with httpx.stream("POST", smol.base + "/v1/chat/completions", headers=H, json=body, timeout=60) as r:
        lines = r.iter_lines()
        seen = 0
        for line in lines:
            if line.startswith("data: ") and '"content"' in line:
                seen += 1
            if seen >= 5:
                break
        assert queue(smol)["running"]
    # The connection is closed: the job must stop within about a token.
    t = time.monotonic()
    while queue(smol)["running"]:
        assert time.monotonic() - t < 2, "engine still busy after the client left"
        time.sleep(0.01)
    r = chat(smol, max_tokens=2)
    assert r.status_code == 200 and r.json()["timings"]["queue_ms"] < 500


def test_killed_non_streaming_client_frees_the_engine(smol):
    body = {"model": "x", "messages": [LONG], "max_tokens": 1500, "temperature": 0, "logit_bias": ENDLESS}
    try:
        httpx.post(smol.base + "/v1/chat/completions", headers=H, json=body, timeout=1.0)
    except httpx.TimeoutException:
        pass
    t = time.monotonic()
    while queue(smol)["running"]:
        assert time.monotonic() - t < 2, "engine still busy after the client left"
        time.sleep(0.01)


def raw_request(server, body: dict) -> socket.socket:
    """Sends one HTTP/1.1 request on a plain socket and returns the socket unread."""
    data = json.dumps(body).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(head + data)
    return s


def wait_until(predicate, limit: float, what: str) -> float:
    t = time.monotonic()
    while not predicate():
        assert time.monotonic() - t < limit, what
        time.sleep(0.01)
    return time.monotonic() - t


def test_a_plain_request_closed_normally_frees_the_engine(smol):
    # close() with nothing unread sends FIN, not RST: what SDK timeouts and retries do.
    s = raw_request(smol, {"model": "x", "messages": [LONG], "max_tokens": 1500, "temperature": 0, "logit_bias": ENDLESS})
    wait_until(lambda: queue(smol)["running"], 5, "the generation did not start")
    s.close()
    wait_until(lambda: not queue(smol)["running"], 2, "engine still busy after the client closed (FIN)")


def test_a_queued_request_closed_normally_leaves_the_queue(smol):
    running = raw_request(smol, {"model": "x", "messages": [LONG], "max_tokens": 1500, "temperature": 0, "logit_bias": ENDLESS})
    wait_until(lambda: queue(smol)["running"], 5, "the generation did not start")
    plain = raw_request(smol, {"model": "x", "messages": [LONG], "max_tokens": 5, "temperature": 0})
    streamed = raw_request(smol, {"model": "x", "messages": [LONG], "max_tokens": 5, "temperature": 0, "stream": True})
    wait_until(lambda: queue(smol)["waiting"] == 2, 5, "the two requests were not queued")
    plain.close()
    streamed.close()
    wait_until(lambda: queue(smol)["waiting"] == 0, 0.2, "closed requests still counted as waiting")
    running.close()
    wait_until(lambda: not queue(smol)["running"], 2, "engine still busy after the client closed (FIN)")


def test_a_request_half_closed_before_its_answer_is_cancelled_too(smol):
    # HTTP/1.1 lets a client close only its sending side, but no SDK does; a proxy that
    # gave up on a request does. Treated as gone, as nginx and llama.cpp's server do.
    s = raw_request(smol, {"model": "x", "messages": [LONG], "max_tokens": 1500, "temperature": 0, "logit_bias": ENDLESS, "stream": True})
    wait_until(lambda: queue(smol)["running"], 5, "the generation did not start")
    s.shutdown(socket.SHUT_WR)
    wait_until(lambda: not queue(smol)["running"], 2, "engine still busy after the client half-closed")
    s.close()


def grace_config(seconds: int) -> str:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"sandbox-api-grace-{seconds}-{os.getpid()}.toml"
    path.write_text(f"shutdown_grace_seconds = {seconds}\n")
    return str(path)


def collect_stream(server, body: dict, box: dict, key: str):
    try:
        with httpx.stream("POST", server.base + "/v1/chat/completions", headers=H, json=body, timeout=60) as r:
            box[key] = (r.status_code, [line for line in r.iter_lines() if line])
    except httpx.HTTPError as e:
        box[key] = e


def test_sigterm_tells_every_client_and_refuses_new_connections():
    server = Server(FIXTURES / "smollm2-135m-instruct.gguf", "--ctx", "2048", "--config", grace_config(1))
    box = {}
    endless = {"model": "x", "messages": [LONG], "max_tokens": 1500, "temperature": 0, "logit_bias": ENDLESS}
    short = {"model": "x", "messages": [LONG], "max_tokens": 5, "temperature": 0}
    threads = [threading.Thread(target=collect_stream, args=(server, {**endless, "stream": True}, box, "running"))]
    try:
        threads[0].start()
        wait_until(lambda: queue(server)["running"], 5, "the generation did not start")
        threads.append(threading.Thread(
            target=lambda: box.__setitem__("plain", httpx.post(server.base + "/v1/chat/completions", headers=H,
                                                               json=short, timeout=60))))
        threads.append(threading.Thread(target=collect_stream, args=(server, {**short, "stream": True}, box, "queued")))
        for t in threads[1:]:
            t.start()
        wait_until(lambda: queue(server)["waiting"] == 2, 5, "the two requests were not queued")
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)

        def refused():
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=0.2).close()
                return False
            except ConnectionRefusedError:
                return True
        assert wait_until(refused, 1, "new connections still accepted after SIGTERM") < 1

        # The queued: at once, in their own terms.
        threads[1].join(timeout=5)
        plain = box["plain"]
        assert plain.status_code == 503, plain.text
        assert plain.json()["error"]["code"] == "server_stopping"
        assert int(plain.headers["Retry-After"]) >= 1
        threads[2].join(timeout=5)
        status, lines = box["queued"]
        assert status == 200 and lines[-1] == "data: [DONE]", lines
        assert '"server_stopping"' in lines[-2], lines
        assert time.monotonic() - t0 < 1.5, "the queued requests were not answered at once"

        # The running stream: the grace period (1 s), then an error event and [DONE].
        threads[0].join(timeout=10)
        status, lines = box["running"]
        assert status == 200 and lines[-1] == "data: [DONE]", lines[-3:]
        assert '"server_stopping"' in lines[-2], lines[-3:]
        assert sum('"content"' in line for line in lines) > 5, "the stream never ran"
        assert 0.9 < time.monotonic() - t0 < 4

        assert server.proc.wait(timeout=15) == 0
        assert time.monotonic() - t0 < 8
    finally:
        server.stop()
        for t in threads:
            t.join(timeout=30)


def test_sigterm_lets_a_running_request_finish_within_the_grace():
    server = Server(FIXTURES / "smollm2-135m-instruct.gguf", "--ctx", "2048")
    box = {}
    body = {"model": "x", "messages": [LONG], "max_tokens": 60, "temperature": 0, "logit_bias": ENDLESS}
    th = threading.Thread(target=lambda: box.__setitem__(
        "r", httpx.post(server.base + "/v1/chat/completions", headers=H, json=body, timeout=60)))
    try:
        th.start()
        wait_until(lambda: queue(server)["running"], 5, "the generation did not start")
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        th.join(timeout=15)
        answered = time.monotonic()
        r = box["r"]
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["finish_reason"] == "length"
        assert r.json()["usage"]["completion_tokens"] == 60
        assert answered - t0 < 10, "not answered within the grace period"
        # Then it exits at once (not after the grace period or a keep-alive timeout).
        assert server.proc.wait(timeout=15) == 0
        assert time.monotonic() - answered < 3
    finally:
        server.stop()
        th.join(timeout=30)