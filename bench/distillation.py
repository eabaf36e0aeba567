"""Distillation learning curves: students trained with each (gold weight, temperature) mix on
the warehouse ``make run`` left, side by side with the gold-only student, in one process.

Each student starts from the same base encoder with the same settings as ``trained_reader``
(one epoch by default) and learns from the distillation pool: the train questions with their
edit-distance contexts, their gold answers and the teacher's labels (``teacher_logits``). After
every epoch it is scored on the blend questions (what ``student_reader`` chooses on); at the
end the best epoch's weights are scored on the validation questions under ``--ranking``'s
contexts (measured only, as the scorecard does). Gold weight 1 is the gold-only student; 0 is
the teacher alone (the answers are never read).

    make run && .venv/bin/python bench/distillation.py [--mixes 1:1 0.5:2 0:2] [--epochs 1]
"""

import argparse
import tempfile
from pathlib import Path

import duckdb
import numpy as np

from pipeline.answering import distillation
from pipeline.answering.readers import multiple_choice
from pipeline.answering.reading_list import reading_list
from pipeline.metrics import average_precisions, estimate, top1_hits
from pipeline.models import resolve
from pipeline.paths import work_dir
from pipeline.questions.roles import TRAIN_RANKING


def mix(text: str) -> tuple[float, float]:
    weight, temperature = text.split(":")
    return float(weight), float(temperature)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixes", type=mix, nargs="+", default=[(1.0, 1.0), (0.5, 2.0),
                                                                  (0.0, 2.0)],
                        help="gold_weight:temperature pairs (1:1 is the gold-only student)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--ranking", default="semantic")
    parser.add_argument("--base", default=multiple_choice.DEFAULT_MODEL)
    args = parser.parse_args()

    with duckdb.connect(str(work_dir() / "warehouse.duckdb")) as db:
        examples, rows = distillation.training_examples(db)
        held_out = reading_list(db, TRAIN_RANKING, roles=("blend",)).pairs()
        validation = reading_list(db, args.ranking, roles=("validation",)).pairs()
    labelled = [(ex, row) for ex, row in zip(examples, rows, strict=True) if row is not None]
    taught = np.array([row for _, row in labelled])
    gold = [ex[0].answer for ex, _ in labelled]
    teacher_map = average_precisions(taught, gold).mean()
    print(f"{len(examples)} pool questions, {len(labelled)} with the teacher's labels (teacher "
          f"on them: accuracy {np.mean(top1_hits(taught, gold)):.3f},"
          f" MAP@3 {teacher_map:.3f}); {len(held_out)} blend, {len(validation)} validation "
          f"questions ({args.ranking} contexts)")
    base = resolve(args.base, log=lambda _: None)
    answers = [q.answer for q, _ in validation]
    results = []
    for weight, temperature in args.mixes:
        with tempfile.TemporaryDirectory() as scratch:
            gold_only = weight >= 1.0
            report = multiple_choice.train(
                base, [ex for ex, row in zip(examples, rows, strict=True)
                       if not gold_only or ex[0].answer is not None],
                Path(scratch), eval_examples=held_out, epochs=args.epochs,
                teacher=None if gold_only else rows, gold_weight=min(weight, 0.999),
                temperature=temperature, log=lambda _: None)
            reader = multiple_choice.MultipleChoiceReader(Path(scratch), device="cpu")
            logits = reader.score_many(validation)
        est = estimate(average_precisions(logits, answers))
        right = np.mean(top1_hits(logits, answers))
        curve = " → ".join(f"{p.map_at_3:.3f}" for p in report.curve)
        losses = " → ".join(f"{p.train_loss:.3f}" for p in report.curve[1:])
        results.append((weight, temperature, curve, losses, report.best_epoch, est, right,
                        report.seconds))
        print(f"gold {weight:g} T {temperature:g}: blend MAP@3 by epoch {curve}; validation "
              f"MAP@3 {est.value:.4f} [{est.low:.3f}, {est.high:.3f}], accuracy {right:.3f}, "
              f"{report.seconds:.0f} s", flush=True)
    print("\n| gold weight | temperature | blend MAP@3 by epoch (0 = untrained) | train loss "
          "by epoch | best epoch | validation MAP@3 | 95% interval | accuracy | training s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for weight, temperature, curve, losses, best, est, right, seconds in results:
        print(f"| {weight:g} | {'' if weight >= 1 else format(temperature, 'g')} | {curve} | "
              f"{losses} | {best} | {est.value:.4f} | {est.low:.3f}\u2013{est.high:.3f} | "
              f"{right:.3f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
