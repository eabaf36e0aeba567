"""GPU smoke check: the GPU recipe's code paths on tiny random models, in a few minutes.

    python bench/gpu_smoke.py [--device cuda] [--precision auto]

Builds tiny randomly initialised models from configurations in memory (``tests/tiny_models.py``:
a DeBERTa-v2 encoder and Llama- and Qwen2-style causal LMs, tokenizers trained on the fixture
text; no downloads, a few MB in all) and runs the real code on the device:

* a few training steps of the cross-encoder reader (``multiple_choice.train``, kind
  ``cross_encoder``) in mixed precision with gradient checkpointing and accumulation, the
  best checkpoint saved, reloaded and scoring a ragged batch;
* the causal-LM reader loaded straight onto the device in its half precision, scoring a batch
  of questions of 2 to 5 options several a forward pass with prefix reuse, by answer letter
  (five rotations) and per option (yes/no), each batch checked against the questions read
  alone.

It prints the device, dtypes, peak GPU memory and seconds per question, exits non-zero on any
failure, and exits 0 with a ``SKIP`` line where there is no GPU. It needs only torch,
transformers and tokenizers (the project's code travels as source: run it from the repository
root). The models are noise; the check is that the paths run and agree, never what they answer.
``tests/bench/test_gpu_smoke.py`` runs the same checks on the CPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the source, uninstalled

# Half precision against float32 of the same question alone: bfloat16 keeps 8 bits of mantissa.
TOLERANCE = {"float32": 1e-4, "bfloat16": 0.15, "float16": 0.05}


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def run_checks(device: str = "cuda", precision: str = "auto",
               log: Callable[[str], None] = print) -> dict[str, float | str]:
    """Run every check on ``device``; the figures measured. Raises on the first failure."""
    import numpy as np
    import torch

    from pipeline.answering.readers.causal_lm import CausalLMReader
    from pipeline.answering.readers.multiple_choice import (
        MultipleChoiceReader,
        compute_dtype,
        train,
    )
    from pipeline.devices import torch_device
    from pipeline.models import resolve
    from tests.tiny_models import fact_questions, tiny_deberta, tiny_llama

    target = torch_device(device)
    cuda = target.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(target)
    items = fact_questions()
    figures: dict[str, float | str] = {"device": str(target)}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        dtype = str(compute_dtype(target, precision)).removeprefix("torch.")
        figures["cross_encoder_dtype"] = dtype
        started = time.perf_counter()
        report = train(tiny_deberta(folder / "deberta"), items[:16], folder / "reader",
                       eval_examples=items[16:24], epochs=2, batch_size=4, grad_accum=2,
                       lr=1e-3, head_lr=1e-3, max_length=128, kind="cross_encoder",
                       device=str(target), precision=precision, gradient_checkpointing=True,
                       log=lambda line: log("  " + line))
        check(report.steps == 4 and bool(np.isfinite(report.losses).all()),
              f"cross-encoder training: {report.steps} steps, losses {report.losses}")
        figures["cross_encoder_training_s"] = round(time.perf_counter() - started, 2)
        reader = MultipleChoiceReader(folder / "reader", device=str(target))
        logits = reader.score_many(items)
        check(all(np.isfinite(row[: len(q.options)]).all() and np.isnan(row[len(q.options):])
                  .all() for row, (q, _) in zip(logits, items, strict=True)),
              "cross-encoder logits: not finite over exactly each question's options")
        figures["cross_encoder_s_per_question"] = round(reader.last_seconds_per_question, 4)
        log(f"cross-encoder: {report.steps} steps in {dtype}, losses "
            f"{[round(x, 3) for x in report.losses]}, scored {len(items)} questions")

        for family in ("llama", "qwen2"):
            model = resolve(str(tiny_llama(folder / family, family=family)), online=False,
                            log=lambda _: None)
            for scoring in ("letter", "option"):
                batched = CausalLMReader(model, max_context_tokens=64, permutations=5,
                                         device=str(target), precision=precision,
                                         scoring=scoring, batch_size=8)
                weights = {(p.device.type, str(p.dtype).removeprefix("torch."))
                           for p in batched.model.parameters()}
                check(weights == {(target.type, batched.precision)},
                      f"{family} weights are {weights}, not all {batched.precision} on "
                      f"{target.type}")
                scores = batched.score_many(items[:16])
                alone = np.array([np.pad(batched.score(q, c), (0, 10 - len(q.options)),
                                         constant_values=np.nan) for q, c in items[:16]])
                apart = float(np.nanmax(np.abs(scores.logits - alone)))
                check(np.array_equal(np.isnan(scores.logits), np.isnan(alone)),
                      f"{family} {scoring}: batched scores cover other options than alone")
                check(apart <= TOLERANCE[batched.precision],
                      f"{family} {scoring}: batched scores {apart:.4f} from alone")
                figures[f"{family}_{scoring}_s_per_question"] = round(
                    scores.seconds_per_question, 4)
                figures[f"{family}_{scoring}_batch_vs_alone"] = round(apart, 5)
                figures[f"{family}_dtype"] = batched.precision
                log(f"{family} {scoring}: {batched.precision} on {target.type}, "
                    f"{scores.seconds_per_question:.4f} s a question in batches of 8, "
                    f"{apart:.5f} from each alone")
    if cuda:
        figures["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(target) / 2**20, 1)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("SKIP: no CUDA GPU here (torch.cuda.is_available() is False); "
              "run on a GPU machine, or pass --device cpu for the CPU twin")
        return 0
    if args.device.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    started = time.perf_counter()
    try:
        figures = run_checks(args.device, args.precision)
    except Exception as exc:  # any failure is the answer: say it and exit non-zero
        print(f"FAILED: {type(exc).__name__}: {exc}")
        return 1
    for name, value in figures.items():
        print(f"{name}: {value}")
    print(f"PASSED in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
