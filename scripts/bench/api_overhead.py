"""Measures TTFT and decode tokens/s: library vs sandbox-api vs llama.cpp's server.

Every target gets the same chat prompt, greedy decoding, and exactly --tokens tokens
(end-of-generation suppressed). TTFT is measured by the caller: from sending the
request (or submitting the job) to the first token; decode speed over the tokens
after the first. The prompt is the same each run, so both servers reuse the cached
prompt and TTFT is dominated by per-request overhead.
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

import gguf
import httpx
from sse_client import stream_chat

REPO = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
PROMPT = "Tell me a long story about a lighthouse keeper."


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eog_ids(model: Path):
    r = gguf.GGUFReader(str(model))
    ids = set()
    for key in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"):
        f = r.fields.get(key)
        if f is not None:
            ids.add(int(f.parts[f.data[0]][0]))
    return sorted(ids)


def http_run(base, tokens, banned, headers=None):
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "logit_bias": {str(t): -100 for t in banned},
    }
    ttft, n, decode, _ = stream_chat(base, body, headers)
    return {"ttft_ms": ttft * 1e3, "tokens": n, "decode_tps": (n - 1) / decode}


def wait_http(url, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready")


class Library:
    """sandbox-core in its own process (examples/latency --on-demand): one run per request,
    so its runs interleave with the servers' and see the same idle gaps."""

    def __init__(self, model, args):
        cmd = [str(TARGET / "release/examples/latency"), "--model", str(model), "--on-demand",
               "--max-tokens", str(args.tokens), "--ctx", str(args.ctx), "--threads", str(args.threads),
               "--prompt", PROMPT]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self):
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def start_sandbox_api(model, args, binary=None):
    port = free_port()
    proc = subprocess.Popen([str(binary or TARGET / "release/sandbox-api"), "--model", str(model), "--listen", f"127.0.0.1:{port}",
                             "--api-key", "bench", "--ctx", str(args.ctx), "--threads", str(args.threads)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/ready")
    return proc, f"http://127.0.0.1:{port}"


def start_peer(model, args):
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = str(model)
    params.n_ctx = args.ctx
    params.n_parallel = 1
    threads = args.threads or os.cpu_count()
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    server = xlc.Server(params)
    wait_http(server.listening_address + "/health")
    return server, server.listening_address


def summary(name, runs):
    counts = {r["tokens"] for r in runs}
    if len(counts) != 1:
        raise RuntimeError(f"{name}: runs generated different token counts {counts}")
    return name, statistics.median(r["ttft_ms"] for r in runs), statistics.median(r["decode_tps"] for r in runs)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", type=Path, default=REPO / ".fixtures/smollm2-135m-instruct.gguf")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--ctx", type=int, default=2048)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--baseline-api", type=Path,
                   help="another sandbox-api binary, measured in the same rounds (before/after a change)")
    args = p.parse_args()
    banned = eog_ids(args.model)
    api_proc, api_base = start_sandbox_api(args.model, args)
    base_proc, base_base = start_sandbox_api(args.model, args, args.baseline_api) if args.baseline_api else (None, None)
    peer_server, peer_base = start_peer(args.model, args)
    auth = {"Authorization": "Bearer bench"}
    library = Library(args.model, args)
    results = {"lib": [], "api": [], "peer": [], "base": []}
    targets = [("lib", library.run), ("api", lambda: http_run(api_base, args.tokens, banned, auth)),
               ("peer", lambda: http_run(peer_base, args.tokens, banned))]
    if base_proc:
        targets.append(("base", lambda: http_run(base_base, args.tokens, banned, auth)))
    try:
        for _, run in targets:
            run()  # fill the prompt caches
        # Rounds interleave the targets, each after the same pause, so that machine
        # noise and idle wake-ups hit all of them alike.
        for _ in range(args.runs):
            for name, run in targets:
                time.sleep(0.3)
                results[name].append(run())
    finally:
        library.close()
        for proc in (api_proc, base_proc):
            if proc:
                proc.send_signal(signal.SIGTERM)
                proc.wait()
        del peer_server
    rows = [
        summary("sandbox-core (library, in process)", results["lib"]),
        summary("sandbox-api (HTTP, streaming)", results["api"]),
        summary("llama.cpp server (xllamacpp, HTTP, streaming)", results["peer"]),
    ]
    lib, api, peer_row = rows
    print(f"model {args.model.name}, {args.runs} runs of {args.tokens} tokens, greedy, cached prompt, "
          f"{args.threads or os.cpu_count()} threads\n")
    print("| target | TTFT p50 | decode tok/s (median) |")
    print("|---|---|---|")
    for name, ttft, tps in rows:
        print(f"| {name} | {ttft:.2f} ms | {tps:.1f} |")
    print()
    print(f"TTFT overhead of the API over the library (p50): {api[1] - lib[1]:+.2f} ms (target ≤ 2 ms)")
    print(f"API decode / library decode: {api[2] / lib[2]:.3f} (target ≥ 0.97)")
    print(f"API decode / llama.cpp server decode: {api[2] / peer_row[2]:.3f} (target ≥ 1.0)")
    if results["base"]:
        base = summary(f"baseline {args.baseline_api}", results["base"])
        print(f"| {base[0]} | {base[1]:.2f} ms | {base[2]:.1f} |")
        print(f"This build against the baseline: TTFT {api[1] - base[1]:+.2f} ms, decode {api[2] / base[2]:.3f}")


if __name__ == "__main__":
    main()
