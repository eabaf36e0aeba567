"""Learning curves of the multiple-choice reader's two kinds (dual encoder, cross-encoder) on
the warehouse ``make run`` left, one after another in one process.

Each reader is trained gold-only as ``trained_reader`` trains it: on the train questions with
their training-ranking contexts, scored on the blend questions before training and after every
epoch (the best epoch is kept); the kept weights are then scored on the validation questions
under ``--ranking``'s contexts (measured only, as the scorecard does).

    make run && .venv/bin/python bench/reader_kinds.py \\
        --readers dual_encoder:minilm:128 cross_encoder:minilm:256 [--epochs 2]

A reader is ``kind:base:max_length[:lr[:head_lr]]``; base ``minilm`` or ``mpnet`` (the bundled
encoders) or any hub id or folder.
"""

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import torch

from pipeline.answering.readers import multiple_choice
from pipeline.answering.reading_list import reading_list
from pipeline.metrics import average_precisions, estimate, top1_hits
from pipeline.models import resolve
from pipeline.paths import work_dir
from pipeline.questions.roles import TRAIN_RANKING

BASES = {"minilm": "sentence-transformers/all-MiniLM-L6-v2",
         "mpnet": "sentence-transformers/all-mpnet-base-v2"}


@dataclass(frozen=True)
class Spec:
    kind: str
    base: str
    max_length: int
    lr: float = 2e-5
    head_lr: float = 1e-2

    @classmethod
    def parse(cls, text: str) -> "Spec":
        kind, base, max_length, *rates = text.split(":")
        multiple_choice.check_kind(kind)
        return cls(kind, base, int(max_length), *(float(rate) for rate in rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=Spec.parse, nargs="+",
                        default=[Spec("dual_encoder", "minilm", 128),
                                 Spec("cross_encoder", "minilm", 256)])
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--ranking", default="semantic")
    args = parser.parse_args()
    torch.set_num_threads(max(torch.get_num_threads(), 1))

    with duckdb.connect(str(work_dir() / "warehouse.duckdb"), read_only=True) as db:
        examples = reading_list(db, TRAIN_RANKING, roles=("train",)).pairs()
        held_out = reading_list(db, TRAIN_RANKING, roles=("blend",)).pairs()
        validation = reading_list(db, args.ranking, roles=("validation",)).pairs()
    print(f"{len(examples)} train, {len(held_out)} blend, {len(validation)} validation "
          f"questions ({TRAIN_RANKING} contexts to learn and choose, {args.ranking} to score)",
          flush=True)
    answers = [q.answer for q, _ in validation]
    results = []
    for spec in args.readers:
        base = resolve(BASES.get(spec.base, spec.base), log=lambda _: None)
        with tempfile.TemporaryDirectory() as scratch:
            report = multiple_choice.train(
                base, examples, Path(scratch), eval_examples=held_out, epochs=args.epochs,
                batch_size=args.batch_size, lr=spec.lr, head_lr=spec.head_lr,
                max_length=spec.max_length, kind=spec.kind, device="cpu",
                log=lambda line: print("  " + line, flush=True))
            reader = multiple_choice.MultipleChoiceReader(Path(scratch), device="cpu")
            start = time.perf_counter()
            logits = reader.score_many(validation)
            per_question = (time.perf_counter() - start) / len(validation)
        est = estimate(average_precisions(logits, answers))
        right = float(np.mean(top1_hits(logits, answers)))
        curve = " → ".join(f"{p.map_at_3:.3f}" for p in report.curve)
        losses = " → ".join(f"{p.train_loss:.3f}" for p in report.curve[1:])
        results.append((spec, curve, losses, report.best_epoch, est, right, report.seconds,
                        per_question))
        print(f"{spec}: blend MAP@3 by epoch {curve}; validation MAP@3 {est.value:.4f} "
              f"[{est.low:.3f}, {est.high:.3f}], accuracy {right:.3f}, trained in "
              f"{report.seconds:.0f} s, {per_question:.3f} s a question to score", flush=True)
    print("\n| kind | base | tokens | lr (head) | blend MAP@3 by epoch (0 = untrained) | train "
          "loss by epoch | best epoch | validation MAP@3 | 95% interval | accuracy | training s "
          "| s a question |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for spec, curve, losses, best, est, right, seconds, per_question in results:
        print(f"| {spec.kind} | {spec.base} | {spec.max_length} | {spec.lr:g} ({spec.head_lr:g})"
              f" | {curve} | {losses} | {best} | {est.value:.4f} | "
              f"{est.low:.3f}\u2013{est.high:.3f} | {right:.3f} | {seconds:.0f} | "
              f"{per_question:.3f} |")


if __name__ == "__main__":
    main()
