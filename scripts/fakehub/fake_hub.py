"""A local fake of the Hugging Face hub that speaks the protocol model downloads use.

GET/HEAD /{repo}/resolve/{revision}/{file}
    302 to http://localhost:PORT/cdn/{sha256} (another host, as the hub's CDN), with X-Repo-Commit, X-Linked-Etag ("sha256"), X-Linked-Size and
    ETag, as the hub answers for LFS files; 401 without a token for --require-token
    repos, 403 for --gated repos, 404 for unknown repos, revisions or files.
GET/HEAD /cdn/{sha256}
    The bytes, with Range support (206 + Content-Range), Accept-Ranges and ETag.
GET /_stats
    JSON: requests served so far per path kind (tests assert "no request at all").

Files are served from --serve REPO=FILE=PATH (repeatable). Faults for tests:
--cut-after N (the first body response over N bytes stops after N bytes and closes the
connection), --rate B (bytes/s per connection), --corrupt (the CDN serves bytes whose sha256 does not match the metadata,
the first --corrupt-times times).

Usage: fake_hub.py --port P [--bind ADDR --cdn-host ADDR] --serve org/name=model.gguf=/path/to/file [options]
"""

import argparse
import hashlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Hub:
    def __init__(self, args):
        self.files = {}  # (repo, file) -> (path, sha, size)
        self.blobs = {}  # sha -> path
        for spec in args.serve:
            repo, name, path = spec.split("=", 2)
            sha = sha256_of(path)
            self.files[(repo, name)] = (path, sha, os.path.getsize(path))
            self.blobs[sha] = path
        self.require_token = set(args.require_token)
        self.gated = set(args.gated)
        self.token = args.token
        self.cut_after = args.cut_after
        self.rate = args.rate
        self.corrupt_left = args.corrupt_times if args.corrupt else 0
        self.lock = threading.Lock()
        self.cdn_host = args.cdn_host
        self.stats = {"resolve": 0, "cdn": 0, "other": 0}


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def handler(hub):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_HEAD(self):
            self.handle_get(head=True)

        def do_GET(self):
            self.handle_get(head=False)

        def error(self, status, message, extra=None):
            body = json.dumps({"error": message}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Error-Message", message)
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def handle_get(self, head):
            path = self.path.split("?")[0]
            if path == "/_stats":
                body = json.dumps(hub.stats).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if path.startswith("/cdn/"):
                with hub.lock:
                    hub.stats["cdn"] += 1
                return self.serve_blob(path[5:], head)
            parts = path.lstrip("/").split("/")
            if len(parts) >= 5 and parts[2] == "resolve":
                with hub.lock:
                    hub.stats["resolve"] += 1
                repo, revision, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                return self.resolve(repo, revision, name)
            with hub.lock:
                hub.stats["other"] += 1
            self.error(404, "Not Found")

        def resolve(self, repo, revision, name):
            auth = self.headers.get("Authorization", "")
            if repo in hub.require_token and auth != f"Bearer {hub.token}":
                return self.error(401, "Invalid credentials in Authorization header", {"X-Error-Code": "RepoNotFound"})
            if repo in hub.gated:
                return self.error(403, f"Access to model {repo} is restricted. You must have access to it and be authenticated to access it.",
                                  {"X-Error-Code": "GatedRepo"})
            if not any(r == repo for r, _ in hub.files):
                return self.error(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
            if revision not in ("main", COMMIT):
                return self.error(404, f"Invalid rev id: {revision}", {"X-Error-Code": "RevisionNotFound"})
            entry = hub.files.get((repo, name))
            if entry is None:
                return self.error(404, "Entry not found", {"X-Error-Code": "EntryNotFound"})
            _, sha, size = entry
            self.send_response(302)
            # Like the hub's CDN redirect, to another host: clients stop there to read
            # the metadata headers of this answer.
            self.send_header("Location", f"http://{hub.cdn_host}:{self.server.server_address[1]}/cdn/{sha}")
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("X-Linked-Etag", f'"{sha}"')
            self.send_header("X-Linked-Size", str(size))
            self.send_header("ETag", f'"{sha}"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def serve_blob(self, sha, head):
            path = hub.blobs.get(sha)
            if path is None:
                return self.error(404, "blob not found")
            size = os.path.getsize(path)
            start, end = 0, size - 1
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                a, _, b = rng[6:].partition("-")
                start = int(a) if a else 0
                end = min(int(b), size - 1) if b else size - 1
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            else:
                self.send_response(200)
            length = end - start + 1
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{sha}"')
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if head:
                return
            with hub.lock:
                corrupt = hub.corrupt_left > 0 and length > 1
                if corrupt:
                    hub.corrupt_left -= 1
                limit = length
                if hub.cut_after is not None and length > hub.cut_after:
                    limit = hub.cut_after
                    hub.cut_after = None
            with open(path, "rb") as f:
                f.seek(start)
                sent = 0
                while sent < limit:
                    block = f.read(min(64 << 10 if hub.rate else 1 << 20, limit - sent))
                    if not block:
                        break
                    if corrupt:
                        block = bytes(b ^ 0xFF for b in block[:16]) + block[16:]
                        corrupt = False
                    try:
                        self.wfile.write(block)
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    sent += len(block)
                    if hub.rate:
                        time.sleep(len(block) / hub.rate)
            if limit < length:
                self.close_connection = True
                self.connection.shutdown(2)

    return H


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    p.add_argument("--cdn-host", default="localhost", help="host name or address of the CDN redirects (another name for this server)")
    p.add_argument("--serve", action="append", default=[])
    p.add_argument("--require-token", action="append", default=[])
    p.add_argument("--gated", action="append", default=[])
    p.add_argument("--token", default="hf_test_token")
    p.add_argument("--cut-after", type=int)
    p.add_argument("--corrupt", action="store_true")
    p.add_argument("--corrupt-times", type=int, default=1)
    p.add_argument("--rate", type=float, help="bytes per second per connection (slow network)")
    args = p.parse_args()
    hub = Hub(args)
    server = ThreadingHTTPServer((args.bind, args.port), handler(hub))
    print(f"http://{args.bind}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
