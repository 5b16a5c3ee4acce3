"""Process-wide settings the server applies before its threads start: llama.cpp's CUDA
op fusion is off unless configured on, and a value already in the environment wins."""

import os
import re

import pytest

from conftest import FIXTURES, Server

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def fusion_logged(*extra, env=None):
    server = Server(FIXTURES / "tiny-mistral-v0.3.gguf", *extra, env=env)
    try:
        log = ANSI.sub("", server.log_path.read_text())
    finally:
        server.stop()
    found = re.search(r"process settings cuda_op_fusion=(true|false)", log)
    assert found, log[-2000:]
    return found.group(1) == "true"


@pytest.mark.skipif("GGML_CUDA_DISABLE_FUSION" in os.environ, reason="the environment already decides")
def test_cuda_op_fusion_is_off_unless_asked_for_and_the_environment_wins():
    assert fusion_logged() is False
    assert fusion_logged("--cuda-op-fusion") is True
    assert fusion_logged(env={"SANDBOX_CUDA_OP_FUSION": "true"}) is True
    assert fusion_logged(env={"GGML_CUDA_DISABLE_FUSION": "0"}) is True
    assert fusion_logged("--cuda-op-fusion", env={"GGML_CUDA_DISABLE_FUSION": "1"}) is False
