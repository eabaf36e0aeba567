"""llama.cpp settings of the heavy reader, each against the current one in the same process:
seconds per question, MAP@3 and how often the first answer is the baseline's.

The candidates are llama.cpp's micro-batch size, flash attention, a quantised key cache, one
thread instead of all, and the shipped Q4_K_M file re-quantised to Q8_0 and to Q4_0 (whose
CPU kernels repack the weights for AVX2 at load) by llama.cpp's own quantiser. The baseline
runs first and again last, so the spread of the two is the noise of the machine. The
questions are the first ``--questions`` blend questions with their CSV passages
(``bench/heavy_scoring.py``), never the validation questions.

    .venv/bin/python -m bench.heavy_settings [--questions 30] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.heavy_scoring import blend_questions
from pipeline.answering.readers import pad
from pipeline.answering.readers.llama_cpp import LlamaCppReader, gguf_path
from pipeline.metrics import average_precisions, estimate
from pipeline.models import resolve
from resources import HeavyReader

GGML_TYPE_Q8_0 = 8  # ggml's type id of a q8_0 tensor (the key cache's type)
# (name, Llama options, re-quantised file type or None for the shipped file)
VARIANTS: list[tuple[str, dict[str, Any], str | None]] = [
    ("baseline", {}, None),
    ("n_ubatch=128", {"n_ubatch": 128}, None),
    ("flash_attn", {"flash_attn": True}, None),
    ("flash_attn+k_q8_0", {"flash_attn": True, "type_k": GGML_TYPE_Q8_0}, None),
    ("threads=1", {"threads": 1}, None),
    ("Q8_0", {}, "Q8_0"),
    ("Q4_0", {}, "Q4_0"),
    ("baseline again", {}, None),
]


def requantised(source: Path, kind: str) -> Path:
    """``source`` re-quantised to ``kind`` (Q8_0 or Q4_0) by llama.cpp, kept beside it."""
    import llama_cpp

    target = source.with_name(f"{source.stem}.{kind}.gguf")
    if not target.exists():
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
        params.allow_requantize = True
        partial = target.with_suffix(".partial")
        if llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(),
                                          ctypes.byref(params)) != 0:
            raise RuntimeError(f"llama.cpp could not quantise {source} to {kind}")
        partial.rename(target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    print(f"{kind}: {target} ({target.stat().st_size / 2**20:.0f} MiB, sha256 {digest[:16]})")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--only", nargs="*", help="variants to run besides the baseline")
    args = parser.parse_args()
    config = HeavyReader()
    items = blend_questions(args.questions)
    answers = [q.answer for q, _ in items]
    model = resolve(config.model)
    shipped = gguf_path(model)
    print(f"{len(items)} blend questions, {config.context_tokens} context tokens, {shipped.name}")
    print(f"{'variant':20}{'load s':>8}{'s/question':>12}{'ratio':>7}{'MAP@3':>22}"
          f"{'agree':>7}{'max |Δ|':>9}")
    base_rows: np.ndarray | None = None
    base_seconds = 0.0
    for name, options, kind in VARIANTS:
        if args.only is not None and not name.startswith("baseline") and name not in args.only:
            continue
        path = requantised(shipped, kind) if kind else shipped
        started = time.perf_counter()
        llama = {k: v for k, v in options.items() if k != "threads"}
        reader = LlamaCppReader(path, context_tokens=config.context_tokens,
                                threads=options.get("threads"), options=llama)
        loaded = time.perf_counter() - started
        rows, seconds = [], []
        for question, context in items:
            started = time.perf_counter()
            rows.append(reader.score(question, context))
            seconds.append(time.perf_counter() - started)
        del reader
        scores = pad(rows)
        median = float(np.median(seconds))
        if base_rows is None:
            base_rows, base_seconds = scores, median
        ap = estimate(average_precisions(scores, answers))
        agree = np.mean(np.nanargmax(scores, 1) == np.nanargmax(base_rows, 1))
        delta = float(np.nanmax(np.abs(scores - base_rows)))
        print(f"{name:20}{loaded:8.1f}{median:12.2f}{median / base_seconds:7.2f}"
              f"{ap.value:8.3f} [{ap.low:.3f}, {ap.high:.3f}]{agree:7.2f}{delta:9.3f}",
              flush=True)


if __name__ == "__main__":
    main()
