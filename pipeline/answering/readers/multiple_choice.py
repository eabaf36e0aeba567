"""The multiple-choice reader: an encoder fine-tuned to pick the option its context states.

Why: the strongest Kaggle solutions read the retrieved context with an encoder fine-tuned on
labelled questions, one logit per option and a softmax over the question's options (2 to 10)
trained with cross-entropy.
Unlike the causal-LM reader it has no letter position bias (the options are scored
independently by the same weights).

The network (:class:`pipeline.answering.readers.option_scorer.OptionScorer`) scores an option by
its best cosine similarity to a sentence of the context, options and sentences embedded by the same
encoder with the attention-masked *mean* of its last hidden states, times a learnt scale. Why
this form on a CPU with a few hundred training questions:

* **It starts from what the encoder was trained to do.** all-MiniLM-L6-v2 was trained to put
  sentences that say the same thing close under mean pooling; untrained, this reader *is* the
  similarity reader (0.5 MAP@3 on the semantic contexts), and training starts from there. The
  first version put a new head on BERT's [CLS]/pooler path, which that checkpoint never
  trained, and stayed at chance (loss ln 5 throughout). A cross-encoder with a mean-pooled head
  over (question + option, context) pairs, the formulation tried next, did not learn either in
  a CPU epoch over the 624 stem_1k train questions (loss 1.604 to 1.609 over 78 steps): the
  five pairs differ only in a few option tokens, so their pooled vectors barely differ.
* **One context for all of a question's options, each option whole.** The context is split
  into sentences once per question (as the chunker splits) and every option is compared with
  the same sentences; options are never cut.
* **It is cheap.** Per question it encodes the context once and a few short options (about 400
  tokens for five), where a cross-encoder encodes the context once per option (1,280 tokens at
  256 each for five).

Questions have 2 to 10 options and a batch mixes them: the batch's options are one flat list,
each with the question it belongs to, so no question is padded with options it does not have;
the logits are ``(n, MAX_OPTIONS)``, NaN past each question's options (inside torch a large
finite negative, :data:`~pipeline.answering.readers.option_scorer.ABSENT`, that a softmax turns
into probability 0).

Training (:func:`train`) fine-tunes encoder and scale with AdamW (the scale at its own rate,
``head_lr``), scores held-out labelled questions (the blend questions) after every epoch
(accuracy and MAP@3: a learning curve) and keeps the best epoch's weights.

CPU default: the bundled all-MiniLM-L6-v2. GPU recipe (the 4th-place and other top solutions):
a cross-encoder such as microsoft/deberta-v3-large with 768 to 1280 tokens and tens of
thousands of training questions is the stronger reader there; this reader takes any
sentence-transformers encoder by hub id or folder (all-mpnet-base-v2 is bundled).

Weights are loaded in float32 explicitly: transformers 5 keeps a checkpoint's dtype, and AdamW
updates underflow in fp16 parameters.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.answering.readers import option_counts, option_mask
from pipeline.answering.readers.similarity import context_sentences, option_texts
from pipeline.devices import torch_device
from pipeline.metrics import average_precisions
from pipeline.models import ResolvedModel, resolve
from pipeline.questions.question import MAX_OPTIONS, Question

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MAX_LENGTH = 128  # tokens of one option or one context sentence
MAX_SENTENCES = 32  # context sentences per question (a 384-token context has about 15)
# Tokens of one context sentence: nearly every sentence fits, and a batch is padded to its
# longest, so one list-like "sentence" of 128 tokens would double the cost of all the others.
SENTENCE_TOKENS = 64
HEAD_FILE = "scale.safetensors"
READER_FILE = "reader.json"
FORMAT = "option-sentence-dual-encoder/1"

Example = tuple[Question, str]  # a question and the context retrieved for it


def model_path(model: ResolvedModel | str | Path) -> Path:
    """A folder for ``model``: a resolved model's path, a local folder, or a resolved hub id."""
    if isinstance(model, ResolvedModel):
        return model.path
    if Path(model).is_dir():
        return Path(model)
    return resolve(str(model)).path


def encode(tokenizer: Any, items: Sequence[Example], max_length: int,
           with_prompt: bool = True) -> dict:
    """The tensors of a batch of questions: the options (each question's own, in order, each
    after the prompt unless ``with_prompt`` is off) with the question each belongs to
    (``option_owner``) and its place in it (``option_slot``), how many options each question has
    (``counts``), every question's context sentences, and which question each sentence belongs
    to (``owner``).

    The prompt is on by default: an option alone cannot tell the sentence that answers the
    question from one that merely mentions the option (a context about planets has a sentence
    for every planet); the prompt shrinks the option texts' differences, which training then
    learns to read.
    """
    import torch

    options: list[str] = []
    option_owner: list[int] = []
    option_slot: list[int] = []
    for i, (question, _) in enumerate(items):
        texts = option_texts(question, with_prompt)
        options += texts
        option_owner += [i] * len(texts)
        option_slot += range(len(texts))
    sentences: list[str] = []
    owner: list[int] = []
    for i, (_, context) in enumerate(items):
        found = context_sentences(context)[:MAX_SENTENCES]
        sentences += found
        owner += [i] * len(found)

    def tokens(texts: list[str], limit: int) -> dict:
        return dict(tokenizer(texts or [""], truncation=True, max_length=limit,
                              padding=True, return_tensors="pt"))

    return {"options": tokens(options, max_length),
            "sentences": tokens(sentences, min(max_length, SENTENCE_TOKENS)),
            "owner": torch.tensor(owner or [-1], dtype=torch.long),
            "option_owner": torch.tensor(option_owner, dtype=torch.long),
            "option_slot": torch.tensor(option_slot, dtype=torch.long),
            "counts": torch.tensor([len(q.options) for q, _ in items], dtype=torch.long)}


def _to(batch: dict, device: torch.device) -> dict:
    return {key: ({k: v.to(device) for k, v in value.items()} if isinstance(value, dict)
                  else value.to(device)) for key, value in batch.items()}


def label_of(question: Question) -> int:
    """The index of the answer among the question's own letters."""
    if question.answer not in question.letters:
        raise ValueError(f"question {question.id} has no answer letter among its "
                         f"{len(question.options)} options ({question.answer!r})")
    return question.letters.index(question.answer)


def _label_or_none(question: Question) -> int:
    """The gold option, or -1 for a question without one (it learns from its teacher alone)."""
    return label_of(question) if question.answer is not None else -1


def load_scorer(folder: Path, *, fresh_head: bool = False) -> tuple[Any, Any, dict]:
    """Scorer, tokenizer and reader settings from ``folder``: a trained reader, or (with
    ``fresh_head``) a base encoder with the initial scale."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from pipeline.answering.readers.option_scorer import OptionScorer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoder = AutoModel.from_pretrained(folder, dtype=torch.float32, add_pooling_layer=False) \
        if _has_pooler(folder) else AutoModel.from_pretrained(folder, dtype=torch.float32)
    scorer = OptionScorer(encoder).float()
    settings: dict = {}
    if not fresh_head:
        if not (folder / HEAD_FILE).is_file():
            raise FileNotFoundError(f"{folder} holds no trained reader ({HEAD_FILE}): train "
                                    "it first (the trained_reader asset)")
        scorer.log_scale.data = load_file(str(folder / HEAD_FILE))["log_scale"]
        settings = json.loads((folder / READER_FILE).read_text())
    return scorer, tokenizer, settings


def _has_pooler(folder: Path) -> bool:
    """BERT-like configs accept ``add_pooling_layer``; the pooler is unused and untrained here."""
    config = json.loads((folder / "config.json").read_text()) if (
        folder / "config.json").is_file() else {}
    return config.get("model_type") in {"bert", "roberta", "xlm-roberta", "mpnet"}


def save_scorer(scorer: Any, tokenizer: Any, folder: Path, settings: dict) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    scorer.encoder.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    save_file({"log_scale": scorer.log_scale.detach().cpu().contiguous()},
              str(folder / HEAD_FILE))
    (folder / READER_FILE).write_text(json.dumps({"format": FORMAT, **settings}, indent=1))


@dataclass(frozen=True)
class EpochScore:
    """The reader after one epoch: mean training loss, accuracy and MAP@3 on held-out questions."""

    epoch: float
    steps: int
    train_loss: float
    accuracy: float | None
    map_at_3: float | None


@dataclass(frozen=True)
class TrainReport:
    """What a training run did: losses per optimizer step, the learning curve, the epoch kept."""

    out_dir: Path
    steps: int
    examples: int
    epochs_run: float
    losses: list[float] = field(default_factory=list)
    curve: list[EpochScore] = field(default_factory=list)
    best_epoch: float | None = None
    seconds: float = 0.0
    model: str = ""


def score_examples(scorer: Any, tokenizer: Any, items: Sequence[Example], max_length: int,
                   batch_size: int, device: torch.device) -> np.ndarray:
    """``(n, MAX_OPTIONS)`` logits of ``(question, context)`` pairs with the scorer in eval
    mode, NaN past each question's options."""
    import torch

    rows = []
    was_training = scorer.training
    scorer.eval()
    with torch.inference_mode():
        for i in range(0, len(items), batch_size):
            batch = _to(encode(tokenizer, items[i:i + batch_size], max_length), device)
            rows.append(scorer(**batch).double().cpu().numpy())
    scorer.train(was_training)
    logits = np.concatenate(rows) if rows else np.zeros((0, MAX_OPTIONS))
    return np.where(option_mask(option_counts(q for q, _ in items)), logits, np.nan)


def best_options(logits: np.ndarray) -> np.ndarray:
    """Each row's best option, NaN (an option the question lacks) never chosen."""
    return np.where(np.isnan(logits), -np.inf, logits).argmax(axis=1)


def _accuracy_and_map(logits: np.ndarray, items: Sequence[Example]) -> tuple[float, float]:
    gold = np.array([label_of(q) for q, _ in items], dtype=np.int64)
    return (float((best_options(logits) == gold).mean()),
            float(average_precisions(logits, gold).mean()))


def teacher_row(question: Question, row: np.ndarray | Sequence[float] | None) -> np.ndarray:
    """A teacher's row as ``MAX_OPTIONS`` log-probabilities, NaN past the question's options
    (all NaN: no teacher). A row may hold just the question's options or be padded with NaN;
    anything else (a value for an option the question lacks, a missing one) is refused."""
    padded = np.full(MAX_OPTIONS, np.nan)
    if row is None:
        return padded
    values = np.asarray(row, dtype=np.float64)
    k = len(question.options)
    if values.ndim != 1 or not k <= len(values) <= MAX_OPTIONS \
            or not np.isnan(values[k:]).all() or not np.isfinite(values[:k]).all():
        raise ValueError(f"question {question.id} has {k} options but its teacher row is "
                         f"{values.tolist()}: it needs {k} finite values (NaN after them)")
    padded[:k] = values[:k]
    return padded


def train(model_dir: ResolvedModel | str | Path, examples: Sequence[Example],
          out_dir: str | Path, *, eval_examples: Sequence[Example] = (), epochs: float = 2.0,
          max_steps: int | None = None, batch_size: int = 8, grad_accum: int = 1,
          lr: float = 2e-5, head_lr: float = 1e-2, weight_decay: float = 0.01,
          warmup: float = 0.1, max_length: int = DEFAULT_MAX_LENGTH, seed: int = 0,
          log: Callable[[str], None] = print, log_every: int = 10,
          device: str = "auto", teacher: Sequence[np.ndarray | None] | None = None,
          gold_weight: float = 1.0, temperature: float = 1.0) -> TrainReport:
    """Fine-tune an :class:`OptionScorer` on ``(question, context)`` examples; save the best.

    With ``teacher`` (one row of letter log-probabilities per example, one value per option
    the question has, optionally NaN-padded to ``MAX_OPTIONS``; or None) the loss
    is :func:`~pipeline.answering.readers.option_scorer.mixed_loss`: ``gold_weight`` of
    cross-entropy on the gold answer and the rest KL divergence to the teacher at
    ``temperature``; an example without an answer learns from its teacher alone. Without it,
    plain cross-entropy, and every example needs an answer.

    A plain torch loop: AdamW (encoder at ``lr``, the scale at ``head_lr``) with linear
    warm-up then linear decay, gradient accumulation, clipping at 1. It runs ``epochs`` passes
    over the shuffled examples, or ``max_steps`` optimizer steps when that comes first. Before
    training, after each epoch and at the end the model scores ``eval_examples``; the weights
    of the best MAP@3 among those evaluations are saved (the untrained ones if training never
    beat them; the last ones when there are no eval examples). The seed fixes the shuffling
    and dropout, so a rerun on a CPU gives the same weights.
    """
    import torch

    from pipeline.answering.readers.option_scorer import mixed_loss

    if not examples:
        raise ValueError("no training examples")
    counts_all = option_counts(q for q, _ in examples)
    if teacher is None:
        labels_all = [label_of(q) for q, _ in examples]
        soft_all = np.full((len(examples), MAX_OPTIONS), np.nan, dtype=np.float32)
    else:
        if len(teacher) != len(examples):
            raise ValueError(f"{len(examples)} examples but {len(teacher)} teacher rows")
        labels_all = [_label_or_none(q) for q, _ in examples]
        soft_all = np.array([teacher_row(q, row) for (q, _), row in
                             zip(examples, teacher, strict=True)], dtype=np.float32)
        orphans = [q.id for (q, _), label, row in zip(examples, labels_all, teacher,
                                                       strict=True)
                   if label < 0 and row is None]
        if orphans:
            raise ValueError(f"{len(orphans)} examples have neither an answer nor a teacher "
                             f"distribution (e.g. {orphans[:3]})")
    start = time.perf_counter()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    source = model_path(model_dir)
    scorer, tokenizer, _ = load_scorer(source, fresh_head=True)
    target = torch_device(device)
    scorer.to(target).train()

    per_epoch = math.ceil(len(examples) / (batch_size * grad_accum))
    planned = math.ceil(per_epoch * epochs)
    steps_total = max(min(planned, max_steps) if max_steps is not None else planned, 1)
    no_decay = ("bias", "LayerNorm.weight", "layernorm", "norm.weight")
    encoder_params = list(scorer.encoder.named_parameters())
    groups = [
        {"params": [p for n, p in encoder_params if not any(k in n for k in no_decay)],
         "weight_decay": weight_decay, "lr": lr},
        {"params": [p for n, p in encoder_params if any(k in n for k in no_decay)],
         "weight_decay": 0.0, "lr": lr},
        {"params": [scorer.log_scale], "weight_decay": 0.0, "lr": head_lr},
    ]
    optimizer = torch.optim.AdamW(groups)
    warmup_steps = int(warmup * steps_total)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (steps_total - step) / max(1, steps_total - warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    shuffler = random.Random(seed)
    order: list[int] = []
    losses: list[float] = []
    curve: list[EpochScore] = []
    best: tuple[float, float, dict] | None = None  # (map@3, epoch, state)
    seen = 0
    epoch_losses: list[float] = []
    log(f"training {source.name}: {len(examples)} examples, {steps_total} steps of "
        f"{batch_size}x{grad_accum} questions, lr {lr} (head {head_lr}), max_length "
        f"{max_length}, evaluated on {len(eval_examples)} held-out questions"
        + ("" if teacher is None else f"; gold weight {gold_weight}, teacher temperature "
           f"{temperature}, {int((~np.isnan(soft_all).all(axis=1)).sum())} teacher rows"))

    def evaluate() -> None:
        nonlocal best
        epoch = round(len(losses) / per_epoch, 3)
        mean_loss = float(np.mean(epoch_losses)) if epoch_losses else float("nan")
        accuracy = map3 = None
        if eval_examples:
            scored = score_examples(scorer, tokenizer, eval_examples, max_length, batch_size,
                                    target)
            accuracy, map3 = _accuracy_and_map(scored, eval_examples)
        curve.append(EpochScore(epoch, len(losses), mean_loss, accuracy, map3))
        log(f"epoch {epoch}: train loss {mean_loss:.4f}"
            + (f", held-out accuracy {accuracy:.3f}, MAP@3 {map3:.4f}" if map3 is not None
               else ""))
        key = map3 if map3 is not None else float(len(curve))
        if best is None or key > best[0]:
            best = (key, epoch, copy.deepcopy({k: v.detach().cpu() for k, v in
                                               scorer.state_dict().items()}))
        epoch_losses.clear()

    if eval_examples:
        evaluate()  # epoch 0: where training starts (the untrained reader may stay the best)
    while len(losses) < steps_total:
        step_loss = 0.0
        for _ in range(grad_accum):
            if len(order) < batch_size:
                epoch_order = list(range(len(examples)))
                shuffler.shuffle(epoch_order)
                order.extend(epoch_order)
            chosen, order = order[:batch_size], order[batch_size:]
            batch = _to(encode(tokenizer, [examples[i] for i in chosen], max_length), target)
            labels = torch.tensor([labels_all[i] for i in chosen], device=target)
            soft = torch.as_tensor(soft_all[chosen], dtype=torch.float32, device=target)
            mask = torch.as_tensor(option_mask(counts_all[chosen]), device=target)
            loss = mixed_loss(scorer(**batch), labels, soft, gold_weight, temperature,
                              mask) / grad_accum
            loss.backward()
            step_loss += loss.item()
            seen += len(chosen)
        torch.nn.utils.clip_grad_norm_(scorer.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(step_loss)
        epoch_losses.append(step_loss)
        if len(losses) % log_every == 0 or len(losses) == steps_total:
            log(f"step {len(losses)}/{steps_total} loss {step_loss:.4f}")
        if len(losses) % per_epoch == 0 or len(losses) == steps_total:
            evaluate()

    assert best is not None
    scorer.load_state_dict(best[2])
    out = Path(out_dir)
    save_scorer(scorer.cpu(), tokenizer, out, {"max_length": max_length,
                                               "base_model": str(source),
                                               "best_epoch": best[1]})
    seconds = time.perf_counter() - start
    return TrainReport(out, len(losses), len(examples), seen / len(examples), losses, curve,
                       best[1], seconds, str(source))


RUNTIMES = ("fp32", "int8")


def quantized(scorer: Any) -> Any:
    """``scorer`` in int8 for the CPU: the linear layers' weights dynamically quantised
    (activations quantised on the fly) and the embedding tables' rows quantised, weights only.
    The embeddings are most of a small encoder (47 of all-MiniLM-L6-v2's 90 MB): linear layers
    alone would leave it at 58 MB; both take it to 23 MB."""
    import torch
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        float_qparams_weight_only_qconfig,
        quantize_dynamic,
    )

    return quantize_dynamic(scorer, {torch.nn.Linear: default_dynamic_qconfig,
                                     torch.nn.Embedding: float_qparams_weight_only_qconfig},
                            dtype=torch.qint8)


def tokens_read(tokenizer: Any, items: Sequence[Example], max_length: int) -> int:
    """How many tokens the reader encodes for ``items`` (options and context sentences,
    without padding)."""
    batch = encode(tokenizer, items, max_length)
    return int(batch["options"]["attention_mask"].sum() + batch["sentences"]["attention_mask"]
               .sum()) if items else 0


class MultipleChoiceReader:
    """A fine-tuned :class:`OptionScorer` that scores each question's own options (2 to 10;
    ``runtime`` int8: its linear layers dynamically quantised, on the CPU)."""

    def __init__(self, model_dir: ResolvedModel | str | Path, batch_size: int = 8,
                 device: str = "auto", max_length: int | None = None,
                 runtime: str = "fp32") -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}: use one of {RUNTIMES}")
        source = model_path(model_dir)
        self.scorer, self.tokenizer, settings = load_scorer(source)
        # int8 kernels are the CPU's: with device auto it runs there, even beside a GPU.
        self.device = torch_device("cpu" if runtime == "int8" and device == "auto" else device)
        if runtime == "int8":
            if self.device.type != "cpu":
                raise ValueError(f"the int8 runtime runs on the CPU only, not {device}")
            self.scorer = quantized(self.scorer.eval())
        self.scorer.to(self.device).eval()
        self.max_length = max_length or int(settings.get("max_length", DEFAULT_MAX_LENGTH))
        self.batch_size = batch_size
        self.last_seconds_per_question = 0.0

    def score_many(self, items: Sequence[Example]) -> np.ndarray:
        """``(n, MAX_OPTIONS)`` logits of ``(question, context)`` pairs, NaN past each
        question's options; also records the seconds per question in
        :attr:`last_seconds_per_question`."""
        start = time.perf_counter()
        logits = score_examples(self.scorer, self.tokenizer, items, self.max_length,
                                self.batch_size, self.device)
        self.last_seconds_per_question = (time.perf_counter() - start) / max(len(items), 1)
        return logits

    def score(self, question: Question, context: str) -> np.ndarray:
        """One logit per option the question has, in order."""
        return self.score_many([(question, context)])[0, : len(question.options)]
