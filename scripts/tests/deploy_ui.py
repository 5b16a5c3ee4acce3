"""The chat UI of a deployed sandbox, through its public HTTPS entry, as a browser uses it.

    deploy_ui.py HOST IP CA_FILE PASSWORD chat MESSAGE   -> prints the conversation id
    deploy_ui.py HOST IP CA_FILE PASSWORD history ID TEXT -> checks a fresh login sees TEXT in ID

HOST is resolved to IP (the test has no DNS for the instance's name); the certificate
must chain to CA_FILE (Caddy's internal CA in the test) and name HOST.
"""

import json
import re
import socket
import sys

import httpx

host, ip, ca, password, action = sys.argv[1:6]
_getaddrinfo = socket.getaddrinfo
socket.getaddrinfo = lambda h, *a, **k: _getaddrinfo(ip if h == host else h, *a, **k)


def login() -> tuple[httpx.Client, str]:
    """A fresh browser: new cookies, the login form, then the page's CSRF token."""
    http = httpx.Client(base_url=f"https://{host}", verify=ca, timeout=60)
    page = http.get("/login")
    assert page.status_code == 200, page.status_code
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    r = http.post("/login", data={"username": "admin", "password": password, "csrf": token, "next": "/"},
                  headers={"origin": f"https://{host}"})
    assert r.status_code == 303, (r.status_code, r.text[:300])
    csrf = re.search(r'name="csrf-token" content="([0-9a-f]+)"', http.get("/").text).group(1)
    return http, csrf


http, csrf = login()
if action == "chat":
    body = {"action": "send", "content": sys.argv[6], "settings": {"max_tokens": 24}}
    conversation, text, done = None, "", None
    with http.stream("POST", "/app/chat", json=body,
                     headers={"x-csrf-token": csrf, "origin": f"https://{host}"}) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            ev = json.loads(line[6:])
            if ev["type"] == "start":
                conversation = ev["conversation"]
            elif ev["type"] == "delta":
                text += ev["text"]
            elif ev["type"] == "done":
                done = ev
    assert done is not None and conversation is not None, "the answer stream ended without done"
    assert text.strip(), "the answer is empty"
    print(conversation)
elif action == "history":
    conversation, want = sys.argv[6], sys.argv[7]
    r = http.get(f"/c/{conversation}/export.json")
    assert r.status_code == 200, (r.status_code, r.text[:300])
    messages = r.json()["messages"]
    assert any(want in m.get("content", "") for m in messages), messages
    assert any(m.get("role") == "assistant" and m.get("content") for m in messages), messages
    print(len(messages))
else:
    sys.exit(f"unknown action {action}")
