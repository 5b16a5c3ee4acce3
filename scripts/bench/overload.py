"""sandbox-api under overload, on the test models: a storm of concurrent clients, then
the largest request of each kind that is still accepted.

Prints, as Markdown: admitted / refused / other for the storm, whether generations
overlapped, /health latency (p50, p99, max) during the storm on fresh connections,
resident memory before and after, and for each kind of large request (messages, JSON
schema, tools, stop strings) its size, its status and its preparation time (request
sent to response headers of a stream on an idle engine: parsing, schema conversion,
template and tokenizing, before the first token is computed).
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
FIXTURES = Path(os.environ.get("AI_SANDBOX_FIXTURES", REPO / ".fixtures"))
KEY = "sk-overload-bench"
H = {"Authorization": f"Bearer {KEY}"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, model: Path, *extra: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"overload-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            [str(TARGET / "release" / "sandbox-api"), "--model", str(model), "--listen", f"127.0.0.1:{self.port}",
             "--api-key", KEY, *extra], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(self.base + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"sandbox-api did not become ready; see {self.log.name}")

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def probe_health(base, stop: asyncio.Event, out: list):
    # A new connection each time, as a load balancer's check would make.
    while not stop.is_set():
        async with httpx.AsyncClient(timeout=10) as c:
            t = time.perf_counter()
            try:
                r = await c.get(base + "/health")
                out.append((time.perf_counter() - t, r.status_code))
            except httpx.HTTPError:
                out.append((time.perf_counter() - t, 0))
        await asyncio.sleep(0.01)


async def one_client(client, base, i, results):
    body = {"model": "x", "messages": [{"role": "user", "content": f"Say hello to client {i}."}],
            "max_tokens": 4, "temperature": 0, "stream": i % 2 == 1}
    try:
        r = await client.post(base + "/v1/chat/completions", headers=H, json=body)
        timings = r.json().get("timings") if r.status_code == 200 and not body["stream"] else None
        results.append((r.status_code, timings))
    except httpx.HTTPError as e:
        results.append((repr(e), None))


async def storm(api: Api, clients: int):
    stop, health, results = asyncio.Event(), [], []
    prober = asyncio.create_task(probe_health(api.base, stop, health))
    await asyncio.sleep(0.3)
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        t = time.perf_counter()
        await asyncio.gather(*(one_client(client, api.base, i, results) for i in range(clients)))
        took = time.perf_counter() - t
    stop.set()
    await prober
    return results, health, took


def overlaps(results):
    spans = sorted((t["started_at"], t["finished_at"]) for _, t in results if t)
    return sum(1 for (_, f1), (s2, _) in zip(spans, spans[1:]) if s2 < f1)


def prepare_time(api: Api, body: dict, runs: int = 3):
    """Worst time to response headers of a stream (the engine idle), and the status."""
    worst, status, message = 0.0, None, ""
    for _ in range(runs):
        t = time.perf_counter()
        with httpx.stream("POST", api.base + "/v1/chat/completions", headers=H,
                          json={**body, "stream": True, "max_tokens": 1}, timeout=120) as r:
            worst = max(worst, time.perf_counter() - t)
            status = r.status_code
            # A stream's headers come once the job is queued; closing now cancels it.
            if status != 200:
                message = json.loads(r.read())["error"]["message"][:80]
        wait_idle(api)
    return worst, status, message


def wait_idle(api: Api):
    deadline = time.time() + 30
    while httpx.get(api.base + "/ready", timeout=5).json()["queue"]["running"] and time.time() < deadline:
        time.sleep(0.02)


def chat(messages, **extra):
    return {"model": "x", "messages": messages, "temperature": 0, **extra}


def largest_requests(smol: Api, mistral: Api):
    ask = [{"role": "user", "content": "Answer."}]
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": "x"} for i in range(2047)]
    # A schema at every limit at once: 64 optional properties, 32 levels deep, a chain
    # of 250 $refs, about 2,000 values.
    deep = {"type": "string"}
    for _ in range(29):
        deep = {"type": "array", "items": deep, "maxItems": 2}
    defs = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(249)}
    defs["d249"] = {"type": "integer", "minimum": 0, "maximum": 9}
    schema = {"type": "object", "$defs": defs,
              "properties": {**{f"p{i}": {"type": "string", "maxLength": 8} for i in range(64)},
                             "deep": deep, "chain": {"$ref": "#/$defs/d0"}},
              "required": ["deep", "chain"]}
    rf = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    tool_params = {"type": "object", "properties": {f"a{j}": {"type": "string"} for j in range(64)},
                   "required": [f"a{j}" for j in range(32)]}
    tools = [{"type": "function", "function": {"name": f"tool_{i}", "description": "d" * 200,
                                               "parameters": tool_params}} for i in range(64)]
    stops = ["\u00e9" * 1000, "z" * 999 + "q", "ab" * 500, "\n" * 1000]
    return [
        ("messages", "2,047 messages (the limit is 2,048)", smol, chat(turns)),
        ("messages (one too many)", "2,049 messages", smol, chat(turns + turns[:2])),
        ("JSON schema", f"{len(json.dumps(schema)):,} bytes: 64 optional properties, 32 levels, 250 $refs",
         smol, chat(ask, response_format=rf)),
        ("tools, tool_choice required", f"64 tools x 64 parameters, {len(json.dumps(tools)):,} bytes",
         mistral, {**chat(ask, tools=tools, tool_choice="required"), "model": "m"}),
        ("stop strings", "4 x 1,000 characters", smol, chat(ask, stop=stops)),
    ]


def decode_speed(api: Api, stops):
    """Tokens/s of 200 tokens (SmolLM2's end tokens banned) with these stop strings."""
    body = chat([{"role": "user", "content": "Write a long story."}], max_tokens=200,
                logit_bias={"0": -100, "2": -100}, stop=stops)
    r = httpx.post(api.base + "/v1/chat/completions", headers=H, json=body, timeout=300).json()
    return (r["usage"]["completion_tokens"] - 1) / (r["timings"]["predicted_ms"] / 1e3)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=300)
    args = ap.parse_args()
    smol = Api(FIXTURES / "smollm2-135m-instruct.gguf", "--ctx", "16384")
    mistral = Api(FIXTURES / "tiny-mistral-v0.3.gguf", "--ctx", "65536")
    try:
        rss0 = smol.rss_mib()
        results, health, took = asyncio.run(storm(smol, args.clients))
        rss1 = smol.rss_mib()
        statuses = [s for s, _ in results]
        lat = [t for t, _ in health]
        bad_health = sum(1 for _, c in health if c != 200)
        print(f"## Storm: {args.clients} concurrent clients (queue capacity 32, 4 tokens each, half streamed)\n")
        print("| admitted (200) | refused (429) | other | generations overlapping | storm took | "
              "/health p50 | p99 | max | /health failures | RSS before | RSS after |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        other = len(statuses) - statuses.count(200) - statuses.count(429)
        print(f"| {statuses.count(200)} | {statuses.count(429)} | {other} | {overlaps(results)} | {took:.1f} s | "
              f"{pct(lat, 50) * 1e3:.1f} ms | {pct(lat, 99) * 1e3:.1f} ms | {max(lat) * 1e3:.1f} ms | {bad_health} | "
              f"{rss0:.0f} MiB | {rss1:.0f} MiB |")
        print("\n## The largest request of each kind (worst of 3, engine idle)\n")
        print("| kind | size | status | preparation | note |")
        print("|---|---|---|---|---|")
        for kind, size, api, body in largest_requests(smol, mistral):
            t, status, message = prepare_time(api, body)
            print(f"| {kind} | {size} | {status} | {t * 1e3:.0f} ms | {message} |")
        stops = largest_requests(smol, mistral)[-1][3]["stop"]
        plain, stopped = decode_speed(smol, None), decode_speed(smol, stops)
        print(f"\nDecode with the four longest stop strings: {stopped:.0f} tokens/s, without: {plain:.0f} tokens/s")
        print(f"\nRSS after the large requests: {smol.rss_mib():.0f} MiB (SmolLM2), {mistral.rss_mib():.0f} MiB (tiny Mistral)")
    finally:
        smol.stop()
        mistral.stop()


if __name__ == "__main__":
    main()
