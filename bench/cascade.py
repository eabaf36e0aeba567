"""MAP@3 against the share of questions the cascade sends to the heavy reader.

Reads the warehouse ``make run`` left (the cheap blend's calibrated log-probabilities of the
blend and validation questions, and the semantic ranking's contexts), has the heavy reader read
every blend and validation question (through the same per-question cache as the ``cascade``
asset, so a second call reads nothing), then replays the cascade at each share: the rule
fitted on the blend questions, the least sure of each role escalated, the combination fitted on
the escalated blend questions, and MAP@3 with its 95% bootstrap interval on validation.

    make run && .venv/bin/python bench/cascade.py [--shares 0 0.1 0.25 0.5 1] [--limit N]

It also prints the heavy reader's seconds per question (median of the questions it read in
this call) and what each share would add to a run that answers ``--test`` test questions.
"""

import argparse

import duckdb
import numpy as np

from pipeline.answering import cascade, option_scores
from pipeline.answering.readers.heavy import DEFAULT_MODEL
from pipeline.answering.reading_list import reading_list
from pipeline.metrics import average_precisions, estimate
from pipeline.models import resolve
from pipeline.paths import work_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", type=float, nargs="+", default=[0, 0.1, 0.25, 0.5, 1.0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--ranking", default="semantic")
    parser.add_argument("--context-tokens", type=int, default=128)
    parser.add_argument("--limit", type=int, default=None,
                        help="read at most this many questions of each role")
    parser.add_argument("--test", type=int, default=200,
                        help="test questions of the run the minutes are estimated for")
    args = parser.parse_args()

    with duckdb.connect(str(work_dir() / "warehouse.duckdb")) as db:
        roles = {}
        for role in ("blend", "validation"):
            ids, logp, _ = option_scores.read_scores(db, "blended_scores", role)
            ids, logp = ids[: args.limit], logp[: args.limit]
            answers = dict(db.execute("SELECT id, answer FROM questions WHERE role = ?",
                                      [role]).fetchall())
            roles[role] = (ids, logp, [answers[q] for q in ids])
        model = resolve(args.model)
        settings = cascade.HeavySettings(context_tokens=args.context_tokens)
        reading = cascade.HeavyReading(db, settings, model)
        lists = {role: reading_list(db, args.ranking, roles=(role,)) for role in roles}
        heavy = reading.read(lists, {role: ids for role, (ids, _, _) in roles.items()})
        seconds = reading.metadata()["heavy_seconds_per_question"]
        cached = db.execute("SELECT median(seconds) FROM reading_cache").fetchone()[0]

    per_question = seconds or cached
    blend_ids, blend_logp, blend_answers = roles["blend"]
    valid_ids, valid_logp, valid_answers = roles["validation"]
    heavy_valid = np.array([heavy[("validation", q)] for q in valid_ids])
    alone = estimate(average_precisions(heavy_valid, valid_answers))
    print(f"heavy reader {args.model}: {per_question:.1f} s a question (median); alone on "
          f"{len(valid_ids)} validation questions MAP@3 {alone.value:.3f} "
          f"[{alone.low:.3f}, {alone.high:.3f}]")
    rule = cascade.fit_rule(blend_logp, blend_answers)
    print(f"rule: {rule.measure} (ROC AUC of the cheap blend's misses on the blend questions: "
          + ", ".join(f"{m} {v:.3f}" for m, v in rule.auc.items()) + ")")
    scored = len(blend_ids) + len(valid_ids) + args.test
    print(f"\n| share escalated | MAP@3 | 95% interval | heavy-reader minutes for "
          f"{scored} questions |\n|---|---|---|---|")
    for share in args.shares:
        chosen_blend = cascade.escalate(blend_logp, rule, share)
        combination = cascade.fit_combination(
            blend_logp[chosen_blend],
            np.array([heavy[("blend", blend_ids[i])] for i in chosen_blend]).reshape(-1, 5),
            [blend_answers[i] for i in chosen_blend])
        final = valid_logp.copy()
        chosen = cascade.escalate(valid_logp, rule, share)
        if len(chosen):
            final[chosen] = cascade.combine(valid_logp[chosen], heavy_valid[chosen],
                                            combination)
        result = estimate(average_precisions(final, valid_answers))
        minutes = sum(cascade.budget_count(n, share)
                      for n in (len(blend_ids), len(valid_ids), args.test)) * per_question / 60
        print(f"| {share:.0%} | {result.value:.3f} | {result.low:.3f} to {result.high:.3f} | "
              f"{minutes:.0f} |")


if __name__ == "__main__":
    main()
