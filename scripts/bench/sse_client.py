"""A minimal streaming HTTP client for benchmarks (standard library only, so it also runs
on the GPU machine, which cannot install packages)."""

import json
import socket
import time


def sse_events(base, path, body, headers):
    """POSTs `body` and yields (time, event) for each server-sent event as it arrives.

    A raw socket with TCP_NODELAY and the request in one write: HTTP client libraries
    that send headers and body in two packets add a delayed-ACK pause (~40 ms) that
    would be measured as server overhead.
    """
    host, port = base.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
            f"Content-Length: {len(payload)}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)
        raw, body_started, chunked, text = b"", False, False, b""
        while True:
            data = sock.recv(65536)
            now = time.perf_counter()
            if not data:
                return
            raw += data
            if not body_started:
                if b"\r\n\r\n" not in raw:
                    continue
                headers_raw, raw = raw.split(b"\r\n\r\n", 1)
                status = int(headers_raw.split(b" ", 2)[1])
                if status != 200:
                    raise RuntimeError(f"HTTP {status}: {raw[:300]!r}")
                chunked = b"transfer-encoding: chunked" in headers_raw.lower()
                body_started = True
            if chunked:  # de-chunk whatever complete chunks arrived
                while b"\r\n" in raw:
                    size_line, rest = raw.split(b"\r\n", 1)
                    size = int(size_line.split(b";")[0], 16)
                    if len(rest) < size + 2:
                        break
                    text += rest[:size]
                    raw = rest[size + 2:]
            else:
                text, raw = text + raw, b""
            while b"\n\n" in text:
                event, text = text.split(b"\n\n", 1)
                if event.startswith(b"data: ") and event != b"data: [DONE]":
                    yield now, event[6:]


def stream_chat(base, body, headers=None):
    """Streams a chat completion; returns (ttft_s, tokens, decode_s, last_event) where tokens
    counts content chunks and decode_s is the time from the first to the last of them."""
    t0 = time.perf_counter()
    first = last = None
    n = 0
    final = None
    for now, event in sse_events(base, "/v1/chat/completions", body, headers):
        final = event
        # A byte test instead of JSON parsing keeps the client's CPU use (which
        # competes with inference threads) negligible.
        if b'"content":"' in event and b'"content":""' not in event:
            first = first or now
            last = now
            n += 1
    if first is None:
        raise RuntimeError(f"no content streamed; last event: {final!r}")
    return first - t0, n, last - first, json.loads(final) if final else None
