"""Measures sandbox-api on a GPU and llama.cpp's llama-bench on the same GGUF files;
writes a Markdown table. Standard library only (runs on the GPU machine).

Through the API: time from process start to /ready, VRAM used, prefill tokens/s for
512 and 4096 prompt tokens (token-array prompts via /v1/completions, the server's own
prefill timing), single-stream decode tokens/s for 128 and 1024 generated tokens
(end-of-generation banned; the server's decode timing, and the client's streamed
rate as a check)."""

import argparse
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from api_server import serve
from sse_client import stream_chat

# Peak memory bandwidth by GPU name (vendor datasheets), for the decode ceiling.
BANDWIDTH = {"H100 80GB HBM3": 3.35e12, "H100": 3.35e12, "H200": 4.8e12, "RTX 4000 Ada": 360e9}
EOS = 2


def smi(query):
    out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[0]


def post(base, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def measure_api(binary, libs, model):
    used_before = int(smi("memory.used"))
    # Our binary runs on the CUDA build of its own llama.cpp version; llama-bench
    # (another version) must not see these libraries.
    extra = os.environ.get("API_ARGS", "").split()
    with serve(binary, model, libs=libs, extra=extra) as (base, ready_s):
        vram_mib = int(smi("memory.used")) - used_before
        res = {"ready_s": ready_s, "vram_mib": vram_mib}
        def prefill_rate(n, i):
            # Only the first token is shared between runs, so nothing else comes from the cache.
            prompt = [1] + [(1000 + 7 * j + 131 * i) % 30000 + 1000 for j in range(n - 1)]
            r = post(base, "/v1/completions", {"model": "m", "prompt": prompt, "max_tokens": 1, "temperature": 0})
            return n / (r["timings"]["prompt_ms"] / 1e3)

        # The first request after start, as a user's first question meets it (idle GPU
        # clocks included); then, as llama-bench does, timed runs after a warm-up.
        res["pp512_first"] = prefill_rate(512, 0)
        for n, count in ((512, 7), (4096, 3)):
            prefill_rate(n, 99)
            runs = sorted(prefill_rate(n, i + 1) for i in range(count))
            res[f"pp{n}"] = runs[count // 2]
        for n in (128, 1024):
            runs = []
            for i in range(3):
                r = post(base, "/v1/completions", {"model": "m", "prompt": f"{i} Once upon a time", "max_tokens": n,
                                                   "temperature": 0, "logit_bias": {str(EOS): -100}})
                assert r["usage"]["completion_tokens"] == n, r["usage"]
                runs.append((n - 1) / (r["timings"]["predicted_ms"] / 1e3))
            res[f"tg{n}"] = sorted(runs)[1]
        _, tokens, decode_s, _ = stream_chat(base, {"model": "m", "messages": [{"role": "user", "content": "Tell a story."}],
                                                    "max_tokens": 128, "temperature": 0, "stream": True,
                                                    "logit_bias": {str(EOS): -100}})
        res["tg128_client"] = (tokens - 1) / decode_s
        return res


def measure_peer(llama_bench, model):
    out = subprocess.run([llama_bench, "-m", str(model), "-ngl", "99", "-fa", "1", "-r", "3",
                          "-p", "512,4096", "-n", "128,1024", "-o", "json"], capture_output=True, text=True, check=True)
    res = {}
    for row in json.loads(out.stdout):
        key = f"pp{row['n_prompt']}" if row["n_prompt"] else f"tg{row['n_gen']}"
        res[key] = row["avg_ts"]
    return res


def cell(ours, peer, key, digits):
    """'ours / llama-bench', with a dash where llama-bench was not run (--no-peer)."""
    theirs = f"{peer[key]:.{digits}f}" if peer else "–"
    return f"{ours[key]:.{digits}f} / {theirs}"


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--api", required=True)
    p.add_argument("--api-libs", help="folder with the llama.cpp libraries for --api (default: its own RUNPATH)")
    p.add_argument("--llama-bench", help="llama.cpp's llama-bench for the same files (needed unless --no-peer)")
    p.add_argument("--models", nargs="+", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--no-peer", action="store_true", help="measure only sandbox-api (quick experiments)")
    a = p.parse_args()
    if not a.no_peer and not a.llama_bench:
        p.error("--llama-bench is needed unless --no-peer is given")
    gpu, driver = smi("name"), smi("driver_version")
    bw = next((v for k, v in BANDWIDTH.items() if k in gpu), None)
    lines = [f"GPU: {gpu}, driver {driver}, {time.strftime('%Y-%m-%d')}; peak bandwidth "
             f"{bw / 1e12 if bw else float('nan'):.2f} TB/s; CUDA op fusion "
             f"{'off' if os.environ.get('GGML_CUDA_DISABLE_FUSION', '0') not in ('', '0') else 'on'} for both\n",
             "| file | size | ready | VRAM | pp512 first request | pp512 ours / llama-bench | pp4096 ours / llama-bench | tg128 ours / llama-bench | tg1024 ours / llama-bench | tg128 ours / peer | ceiling tg | ours / ceiling |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in a.models:
        ours = measure_api(a.api, a.api_libs, m)
        peer = {} if a.no_peer else measure_peer(a.llama_bench, m)
        print(json.dumps({"model": m.name, "api_args": os.environ.get("API_ARGS", ""), "ours": ours, "peer": peer}), flush=True)
        size = m.stat().st_size
        ceiling = bw / size if bw else float("nan")
        ratio = f"{ours['tg128'] / peer['tg128']:.3f}" if peer else "–"
        lines.append(
            f"| {m.name} | {size / 1e9:.2f} GB | {ours['ready_s']:.1f} s | {ours['vram_mib']} MiB | {ours['pp512_first']:.0f} | "
            f"{cell(ours, peer, 'pp512', 0)} | {cell(ours, peer, 'pp4096', 0)} | {cell(ours, peer, 'tg128', 1)} (client {ours['tg128_client']:.1f}) | "
            f"{cell(ours, peer, 'tg1024', 1)} | {ratio} | {ceiling:.0f} | {ours['tg128'] / ceiling:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    a.out.write_text(text)


if __name__ == "__main__":
    main()
