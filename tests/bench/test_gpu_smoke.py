"""The CPU twin of ``bench/gpu_smoke.py``: the same checks on the CPU, in bfloat16 as a GPU
runs them, and the script's skip where there is no GPU."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.gpu_smoke import TOLERANCE, run_checks
from pipeline.paths import PROJECT_ROOT

torch = pytest.importorskip("torch")


def test_the_gpu_checks_pass_on_the_cpu_in_bfloat16() -> None:
    logged: list[str] = []
    figures = run_checks("cpu", "bfloat16", log=logged.append)
    assert figures["cross_encoder_dtype"] == "bfloat16"
    assert figures["llama_dtype"] == figures["qwen2_dtype"] == "bfloat16"
    for family in ("llama", "qwen2"):
        for scoring in ("letter", "option"):
            assert 0 <= figures[f"{family}_{scoring}_batch_vs_alone"] <= TOLERANCE["bfloat16"]
            assert figures[f"{family}_{scoring}_s_per_question"] > 0
    assert any("as a cross_encoder on cpu in bfloat16" in line for line in logged)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the script runs, not skips")
def test_the_script_skips_with_a_reason_and_exit_0_without_a_gpu() -> None:
    done = subprocess.run([sys.executable, "bench/gpu_smoke.py"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("SKIP: no CUDA GPU")
