"""Starts sandbox-api for a benchmark and stops it afterwards (standard library only, so
it also runs on the GPU machine)."""

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(binary, model, libs=None, ctx=8192, extra=(), log=None):
    """Runs `binary` on `model` until the block ends; yields (base URL, seconds from
    process start to /ready). `libs` goes first on LD_LIBRARY_PATH (our binary on the
    CUDA build of its own llama.cpp version); stderr goes to `log`."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = log or f"/tmp/api-{os.path.basename(str(model)).rsplit('.', 1)[0]}.log"
    env = {**os.environ, "LD_LIBRARY_PATH": libs} if libs else dict(os.environ)
    t0 = time.monotonic()
    with open(log, "w") as err:
        proc = subprocess.Popen([binary, "--model", str(model), "--listen", f"127.0.0.1:{port}", "--ctx", str(ctx),
                                 *extra], stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        while True:
            try:
                with urllib.request.urlopen(base + "/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(open(log).read()[-3000:])
            time.sleep(0.05)
        yield base, time.monotonic() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
