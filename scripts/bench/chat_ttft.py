"""Time to first token in real chats, through the API: a 10-turn conversation (each
turn's prompt is the whole history, so the server can reuse the cached prefix), and a
~4,000-token system prompt followed by short questions, both as one conversation and
as independent requests that share only the system prompt. For each turn: the time to
the first streamed token seen by the client, the server's prompt_ms, and how many
prompt tokens were evaluated and how many came from the cache. Standard library only
(runs on the GPU machine).

Answers are capped at --answer-tokens with end-of-generation banned, so that every run
does the same work on any model (random-weight GPU models included)."""

import argparse
import json
import sys
import time
from pathlib import Path

from api_server import serve
from sse_client import sse_events

# The same chat as examples/bench's prefix-reuse table.
QUESTIONS = (Path(__file__).parent / "chat_questions.txt").read_text().splitlines()


def system_prompt(words):
    """A long, varied system prompt (a product manual) of about `words` words."""
    parts, i = [], 0
    while sum(len(p.split()) for p in parts) < words:
        parts.append(f"Section {i}: the pump model P-{100 + i} runs at {20 + i % 7} litres per minute, "
                     f"needs a {6 + i % 5} mm hose, and must be serviced every {3 + i % 9} months; "
                     f"error code E{i:03d} means the filter number {i % 13} is blocked.")
        i += 1
    return "You answer questions about this manual.\n\n" + "\n".join(parts)


def turn(base, messages, answer_tokens, eos):
    """Streams one answer; returns (client ttft ms, answer text, final timings)."""
    body = {"model": "m", "messages": messages, "max_tokens": answer_tokens, "temperature": 0, "stream": True}
    if eos is not None:
        body["logit_bias"] = {str(eos): -100}
    t0 = time.perf_counter()
    first, text, timings = None, [], None
    for now, event in sse_events(base, "/v1/chat/completions", body, None):
        chunk = json.loads(event)
        timings = chunk.get("timings", timings)
        for choice in chunk.get("choices", []):
            piece = choice.get("delta", {}).get("content")
            if piece:
                first = first or now
                text.append(piece)
    if first is None or timings is None:
        raise RuntimeError("the stream carried no content or no timings")
    return (first - t0) * 1e3, "".join(text), timings


def run_conversation(base, system, questions, answer_tokens, eos, independent=False):
    rows, history = [], []
    if system:
        history.append({"role": "system", "content": system})
    for q in questions:
        messages = (history[:1] if independent else history) + [{"role": "user", "content": q}]
        ttft, answer, t = turn(base, messages, answer_tokens, eos)
        rows.append({"ttft_ms": ttft, "prompt_ms": t["prompt_ms"], "evaluated": t["prompt_n"], "cached": t["cache_n"]})
        if not independent:
            history += [{"role": "user", "content": q}, {"role": "assistant", "content": answer}]
    return rows


def table(title, rows):
    out = [f"**{title}**\n", "| turn | prompt tokens evaluated | from cache | server prompt_ms | client TTFT ms |",
           "|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        out.append(f"| {i} | {r['evaluated']} | {r['cached']} | {r['prompt_ms']:.1f} | {r['ttft_ms']:.1f} |")
    ratio = rows[-1]["ttft_ms"] / rows[0]["ttft_ms"]
    out.append(f"\nlast turn ÷ first turn (client TTFT): **{ratio:.2f}** (goal ≤ 1.2)\n")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--api", required=True)
    p.add_argument("--api-libs")
    p.add_argument("--model", required=True)
    p.add_argument("--ctx", type=int, default=16384)
    p.add_argument("--answer-tokens", type=int, default=64)
    p.add_argument("--system-words", type=int, default=2600, help="about 4,000 tokens on Mistral's tokenizer")
    p.add_argument("--eos", type=int, default=2, help="end-of-generation token to ban (-1: none)")
    p.add_argument("--out")
    a = p.parse_args()
    eos = None if a.eos < 0 else a.eos
    system = system_prompt(a.system_words)
    with serve(a.api, a.model, libs=a.api_libs, ctx=a.ctx) as (base, _):
        turn(base, [{"role": "user", "content": "warm up"}], 4, eos)
        sections = [
            table(f"10-turn conversation ({a.answer_tokens}-token answers)",
                  run_conversation(base, None, QUESTIONS, a.answer_tokens, eos)),
            table(f"system prompt of {a.system_words} words, then 5 questions in one conversation",
                  run_conversation(base, system, QUESTIONS[:5], a.answer_tokens, eos)),
            # Questions not asked above: the first would otherwise be a whole-prompt
            # cache hit and make the ratio meaningless.
            table(f"system prompt of {a.system_words} words, then 5 independent questions",
                  run_conversation(base, system, QUESTIONS[5:10], a.answer_tokens, eos, independent=True)),
        ]
    text = "\n".join(sections)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    sys.exit(main())
