"""bench/bench_gpu.py, the prepared GPU run, works on the CPU (so it has not rotted when a GPU is lent)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def test_gpu_rows_run_on_the_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import bench_gpu

    torch.set_num_threads(2)
    argv = ["bench_gpu", "--data", str(FIXTURES / "bears"), "--device", "cpu", "--n", "3", "--batch", "3",
            "--repeats", "2", "--no-cycle"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", argv)
        bench_gpu.main()
    out = capsys.readouterr().out
    assert re.search(r"forward pass, batch 1, .*p50 [\d.]+ ms", out), out
    assert re.search(r"forward pass, batch 3, .*p50 [\d.]+ ms", out), out
    # Eager torch and the CPU's ONNX graph give the same answers on the fixture photos.
    assert re.search(r"same label and bear/not-bear, cpu vs CPU path +3/3", out), out
