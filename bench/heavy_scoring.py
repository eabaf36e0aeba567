"""The heavy reader's scoring modes and runtimes on the blend questions: the answer letter
against each option proposed alone (yes/no log-odds, the 7th place's form), and the GGUF read by
llama.cpp (quantised weights, memory-mapped) against transformers (dequantised to float32):
load seconds, resident memory the load added, seconds per question, MAP@3.

Both modes run here in one process, one after the other, on the same questions: the first
``--questions`` blend questions of the default pool (the train side of stem_1k, cut as the
``questions`` asset cuts it), each with the passage its CSV row carries as context (cut to the
reader's ``--context-tokens``), so the comparison is of the scoring alone, not of retrieval.
Never the validation questions: the default is chosen on these.

    .venv/bin/python bench/heavy_scoring.py [--questions 50] [--context-tokens 128]
        [--scorings letter option] [--runtimes llama.cpp transformers]

Each reader is loaded, measured and dropped before the next; ``agree`` is the share of
questions whose first answer equals the first reader's.
"""

from __future__ import annotations

import argparse
import csv
import gc
import time
from pathlib import Path

import numpy as np

from assets.questions import QuestionsConfig
from pipeline.answering.readers import heavy, pad
from pipeline.metrics import average_precisions, estimate, top1_hits
from pipeline.models import resolve
from pipeline.questions.csv_format import split_questions
from pipeline.questions.formats import read_questions
from pipeline.questions.training_pool import read_pool
from resources import HeavyReader


def blend_questions(count: int) -> list:
    """The first ``count`` blend questions of the default pool, with their CSV contexts."""
    config = QuestionsConfig()
    scored = [*read_questions(config.test_path, allow_empty_options=True),
              *split_questions(read_questions(config.validation_path))["validation"]]
    pool = read_pool(config.train_paths, scored, blend_size=config.blend_size, train_size=0)
    contexts: dict[str, str] = {}
    for path in config.train_paths:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                contexts[f"{Path(path).stem}:{row['id']}"] = row.get("context", "")
    return [(q, contexts.get(q.id, "")) for q in pool.blend[:count]]


def resident_mib() -> float:
    """This process's resident memory now (VmRSS), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--context-tokens", type=int, default=HeavyReader().context_tokens)
    parser.add_argument("--scorings", nargs="+", default=["letter", "option"])
    parser.add_argument("--runtimes", nargs="+", default=["auto"],
                        help="auto (llama.cpp for a GGUF on the CPU), llama.cpp, transformers")
    args = parser.parse_args()
    items = blend_questions(args.questions)
    answers = [q.answer for q, _ in items]
    model = resolve(HeavyReader().model)
    print(f"{len(items)} blend questions, {args.context_tokens} context tokens, "
          f"{model.reference} ({model.source})")
    print(f"{'runtime':14}{'scoring':9}{'load s':>8}{'+RSS MiB':>10}{'s/question':>12}"
          f"{'tokens/q':>10}{'MAP@3':>22}{'accuracy':>10}{'agree':>7}")
    first: np.ndarray | None = None
    for runtime in args.runtimes:
        for scoring in args.scorings:
            gc.collect()
            before, started = resident_mib(), time.perf_counter()
            reader = heavy.load(model, runtime, context_tokens=args.context_tokens,
                                scoring=scoring)
            loaded, grown = time.perf_counter() - started, resident_mib() - before
            rows, tokens, seconds = [], [], []
            for question, context in items:
                started = time.perf_counter()
                rows.append(reader.score(question, context))
                seconds.append(time.perf_counter() - started)
                tokens.append(reader.last_tokens)
            del reader
            scores = pad(rows)
            top = np.nanargmax(scores, axis=1)
            first = top if first is None else first
            ap = estimate(average_precisions(scores, answers))
            print(f"{runtime:14}{scoring:9}{loaded:8.1f}{grown:10.0f}{np.median(seconds):12.2f}"
                  f"{np.mean(tokens):10.0f}{ap.value:8.3f} [{ap.low:.3f}, {ap.high:.3f}]"
                  f"{top1_hits(scores, answers).mean():10.3f}{np.mean(top == first):7.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
