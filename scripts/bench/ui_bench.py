"""Measures sandbox-ui with a seeded database: list render latency, search, RSS, the
page's weight (JS + CSS as sent) and the Markdown renderer on a 1,000-line answer."""

import gzip
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sandbox-ui/tests/py"))
from ui_process import Browser, Ui  # noqa: E402


def timed(client, path, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.status_code
    times.sort()
    return times, r.text


def page_weight(base, page):
    """Every script and style sheet the chat page loads, as sent with and without gzip."""
    rows = []
    for path in sorted(set(re.findall(r'(?:src|href)="(/static/[^"?]+\.(?:js|css))', page))):
        plain = httpx.get(base + path, headers={"Accept-Encoding": "identity"})
        packed = httpx.get(base + path, headers={"Accept-Encoding": "gzip"})
        sent = packed.num_bytes_downloaded if packed.headers.get("content-encoding") == "gzip" else len(gzip.compress(plain.content))
        rows.append((path, len(plain.content), sent))
    return rows


def main():
    data = Path(sys.argv[1])
    ui = Ui(data, "http://127.0.0.1:9")  # no API needed: pages never wait for the model
    try:
        rss_start = ui.rss_kib()
        b = Browser(ui.base, "admin", "bench-password")
        times, page = timed(b.http, "/", 200)
        n = page.count('class="conv-link"')
        chat_id = page.split('href="/c/', 1)[1].split('"', 1)[0]
        chat_times, _ = timed(b.http, f"/c/{chat_id}", 200)
        # Search: a word in no message (every message read), one in a single chat, and
        # one in every chat (stops at the first 50 hits).
        searches = {q: timed(b.http, f"/app/search?q={q}", 50)[0] for q in ("zebra", "chat%20777%3A", "lighthouses")}
        rss_end = ui.rss_kib()
        weight = page_weight(ui.base, b.http.get(f"/c/{chat_id}").text)
        p = lambda t, q: t[min(len(t) - 1, int(len(t) * q))]  # noqa: E731
        print(f"conversations in the sidebar : {n}")
        print(f"page size                    : {len(page) / 1024:.0f} KiB")
        print(f"GET / (list)       p50 {p(times, .5):6.2f} ms   p95 {p(times, .95):6.2f} ms   max {times[-1]:6.2f} ms   (target < 50 ms)")
        print(f"GET /c/ID (chat)   p50 {p(chat_times, .5):6.2f} ms   p95 {p(chat_times, .95):6.2f} ms   max {chat_times[-1]:6.2f} ms")
        for q, t in searches.items():
            print(f"search {q:<14}  p50 {p(t, .5):6.2f} ms   p95 {p(t, .95):6.2f} ms   max {t[-1]:6.2f} ms   (target < 50 ms)")
        print(f"RSS at start {rss_start / 1024:.1f} MiB, after 400 page loads {rss_end / 1024:.1f} MiB   (target < 50 MB)")
        print(f"mean {statistics.mean(times):.2f} ms over {len(times)} list renders")
        for path, plain, sent in weight:
            print(f"{path:<22} {plain / 1024:7.1f} KiB, {sent / 1024:6.1f} KiB gzip")
        total_plain = sum(w[1] for w in weight)
        total_sent = sum(w[2] for w in weight)
        print(f"JS + CSS total         {total_plain / 1024:7.1f} KiB, {total_sent / 1024:6.1f} KiB gzip (as sent; cached after the first page)")
        subprocess.run(["node", str(Path(__file__).with_name("ui_render.mjs")), ui.base], check=True)
    finally:
        ui.stop()


if __name__ == "__main__":
    main()
