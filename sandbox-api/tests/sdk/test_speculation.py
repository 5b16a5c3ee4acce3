"""Speculative decoding through the API: the same answers with drafting on as off
(plain, streamed, with a stop string and a length limit), and llama.cpp's draft_n /
draft_n_accepted in the timings."""

import httpx
from conftest import KEY
from test_openai_sdk import client

LETTER = (
    "Dear Ms. Alvarez,\n\nThank you for your order of twelve blue ceramic mugs and three teapots. "
    "The mugs will ship on Monday from our warehouse in Porto, and the teapots will follow on "
    "Thursday. Your tracking number is AB-4471-QX.\n\nKind regards,\nThe Sandbox Pottery Team"
)
COPY = [{"role": "user", "content": f"Repeat this letter exactly, word for word:\n\n{LETTER}"}]


def ask(server, **kw):
    return client(server).chat.completions.create(model="x", messages=COPY, temperature=0, **kw)


def test_drafting_gives_the_same_answers(smol, smol_drafting):
    for kw in ({"max_tokens": 200}, {"max_tokens": 13}, {"max_tokens": 200, "stop": ["Porto"]}):
        a, b = ask(smol, **kw).choices[0], ask(smol_drafting, **kw).choices[0]
        assert (a.message.content, a.finish_reason) == (b.message.content, b.finish_reason), kw
    assert ask(smol_drafting, max_tokens=13).choices[0].finish_reason == "length"
    assert ask(smol_drafting, max_tokens=200, stop=["Porto"]).choices[0].finish_reason == "stop"
    streamed = "".join(ch.choices[0].delta.content or "" for ch in ask(smol_drafting, max_tokens=200, stream=True) if ch.choices)
    assert streamed == ask(smol, max_tokens=200).choices[0].message.content


def test_timings_count_the_drafts(smol, smol_drafting):
    body = {"model": "x", "messages": COPY, "max_tokens": 120, "temperature": 0}
    headers = {"Authorization": f"Bearer {KEY}"}
    t = httpx.post(smol_drafting.base + "/v1/chat/completions", json=body, headers=headers, timeout=60).json()["timings"]
    assert t["draft_n"] > 0 and 0 < t["draft_n_accepted"] <= t["draft_n"]
    plain = httpx.post(smol.base + "/v1/chat/completions", json=body, headers=headers, timeout=60).json()["timings"]
    assert "draft_n" not in plain
