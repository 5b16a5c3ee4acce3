"""Drives scripts/deploy through a pseudo-terminal, as a person at a keyboard would.

Usage: deploy_tool_tty.py SCENARIO DEPLOY TRANSCRIPT
Scenarios: full (every prompt, with wrong answers first), ctrl-c, decline, destroy.
The environment (the fake API's URL and token) comes from the caller. Exits non-zero
with the reason when the tool does not answer as expected; TRANSCRIPT gets everything
the terminal showed.
"""

import os
import signal
import sys

import pexpect

TIMEOUT = 30


def spawn(deploy, args, transcript):
    # DEPLOY_BASH: another bash to run it with (a 3.2 build stands in for macOS's).
    child = pexpect.spawn(
        os.environ.get("DEPLOY_BASH", "bash"), [deploy, *args], encoding="utf-8",
        timeout=TIMEOUT, dimensions=(50, 160),
    )
    child.logfile_read = transcript
    return child


def answer(child, prompt, text):
    child.expect_exact(prompt)
    child.sendline(text)


def full(child):
    # Region: not a number, out of range, an unavailable one, then a good one.
    child.expect_exact("Region (the six with RTX 4000 Ada GPUs")
    child.expect_exact("your account cannot create Linodes here")
    answer(child, "Choose 1-6", "abc")
    child.expect_exact("'abc' is not a choice: enter a number from 1 to 6.")
    answer(child, "Choose 1-6", "9")
    child.expect_exact("'9' is not a choice: enter a number from 1 to 6.")
    answer(child, "Choose 1-6", "3")
    child.expect_exact("3 is unavailable: your account cannot create Linodes here")
    answer(child, "Choose 1-6", "1")
    # Size: the recommended one has no capacity in us-ord in this scenario.
    child.expect_exact("Size in Chicago, IL (prices for this region):")
    child.expect_exact("no capacity now")
    answer(child, "Choose 1-9 [2]", "1")
    child.expect_exact("1 is unavailable: no capacity now")
    answer(child, "Choose 1-9 [2]", "")
    answer(child, "Label for the instance [ai-sandbox-us-ord]", "")
    answer(child, "Choose 1-2 [1]", "")
    answer(child, "Sudo user to create on the instance [tester]", "")
    child.expect_exact("Hugging Face token")
    child.sendline("hf_typedsecret")
    child.expect_exact("Model quantization:")
    answer(child, "Choose 1-4 [1]", "2")
    answer(child, "Your domain for HTTPS", "")
    answer(child, "Allow the chat, API and SSH only from this IP or CIDR", "not-an-ip")
    child.expect_exact("'not-an-ip' is not one IP address or CIDR")
    answer(child, "Allow the chat, API and SSH only from this IP or CIDR", "")
    child.expect_exact("About to create:")
    child.expect(r"Cost\s+\$0\.67 per hour, up to \$446 per month")
    answer(child, "Create it? (y/n) [n]", "y")
    child.expect_exact("is ready")
    child.expect_exact("Chat in the browser")
    child.expect(pexpect.EOF)
    return child


def ctrl_c(child):
    child.expect_exact("Choose 1-6")
    child.sendintr()
    child.expect_exact("Cancelled: nothing was created.")
    child.expect(pexpect.EOF)
    return child


# Every question create asks, in order: region, size, label, SSH key, user, token,
# quantization, domain, allowed address.
PROMPTS = ["Choose 1-6", "Choose 1-9", "Label for the instance", "Choose 1-2 [1]",
           "Sudo user to create on the instance", "Hugging Face token", "Choose 1-4 [1]",
           "Your domain for HTTPS", "Allow the chat, API and SSH only from this IP or CIDR"]


def decline(child):
    for prompt in PROMPTS:
        answer(child, prompt, "")
    answer(child, "Create it? (y/n) [n]", "maybe")
    child.expect_exact("Please answer y or n.")
    answer(child, "Create it? (y/n) [n]", "n")
    child.expect_exact("Cancelled: nothing was created.")
    child.expect(pexpect.EOF)
    return child


def destroy(child):
    child.expect_exact("It cannot be undone.")
    answer(child, "Destroy to-go? (y/n) [n]", "y")
    child.expect_exact("Destroyed to-go")
    child.expect(pexpect.EOF)
    return child


SCENARIOS = {
    "full": ([], full, 0),
    "ctrl-c": ([], ctrl_c, 130),
    "decline": ([], decline, 130),
    "destroy": (["destroy", "to-go"], destroy, 0),
}


def main():
    # A test runner started in the background (nohup, CI) ignores SIGINT, the child
    # would inherit that, and a shell cannot trap a signal ignored on entry: a person's
    # terminal never does this, so the tool gets the default back.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    name, deploy, transcript_path = sys.argv[1:4]
    args, drive, want = SCENARIOS[name]
    with open(transcript_path, "w", encoding="utf-8") as transcript:
        child = spawn(deploy, args, transcript)
        try:
            drive(child)
        except (pexpect.TIMEOUT, pexpect.EOF) as e:
            print(f"{name}: the tool did not show what was expected: {type(e).__name__}", file=sys.stderr)
            print(f"last output: {child.before!r}", file=sys.stderr)
            return 1
        child.close()
    if child.exitstatus != want:
        print(f"{name}: exit status {child.exitstatus}, expected {want}", file=sys.stderr)
        return 1
    if name == "full":
        with open(transcript_path, encoding="utf-8") as f:
            if "hf_typedsecret" in f.read():
                print("full: the Hugging Face token was echoed", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
