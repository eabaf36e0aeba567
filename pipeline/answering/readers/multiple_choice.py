"""The multiple-choice reader: an encoder fine-tuned to pick the option its context states.

Why: the strongest Kaggle solutions read the retrieved context with an encoder fine-tuned on
labelled questions, one logit per option and a softmax over the question's options (2 to 10)
trained with cross-entropy.
Unlike the causal-LM reader it has no letter position bias (the options are scored
independently by the same weights).

Two kinds of network, chosen by ``kind`` and recorded in the trained reader's ``reader.json``:

* ``cross_encoder`` (:mod:`pipeline.answering.readers.cross_encoder`): the Kaggle solutions'
  form, ``AutoModelForMultipleChoice`` over (question + option, context) pairs. The GPU recipe
  (deberta-v3-large at 1024-1280 tokens).
* ``dual_encoder`` (below), designed for a CPU budget and the CPU default.

The dual encoder (:class:`pipeline.answering.readers.option_scorer.OptionScorer`) scores an
option by its best cosine similarity to a sentence of the context, options and sentences
embedded by the same encoder with the attention-masked *mean* of its last hidden states, times
a learnt scale. Why this form on a CPU with a few hundred training questions:

* **It starts from what the encoder was trained to do.** all-MiniLM-L6-v2 was trained to put
  sentences that say the same thing close under mean pooling; untrained, this reader *is* the
  similarity reader (0.5 MAP@3 on the semantic contexts), and training starts from there. The
  first version put a new head on BERT's [CLS]/pooler path, which that checkpoint never
  trained, and stayed at chance (loss ln 5 throughout). A cross-encoder with a mean-pooled head
  over (question + option, context) pairs, the formulation tried next, did not learn either in
  a CPU epoch over the 624 train questions stem_1k had then (loss 1.604 to 1.609, 78 steps): the
  five pairs differ only in a few option tokens, so their pooled vectors barely differ. (The
  ``cross_encoder`` kind scores pairs with the model's own multiple-choice head instead; its
  learning curve on this CPU is in docs/benchmarks.md beside this reader's.)
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

Training (:func:`train`, either kind) fine-tunes the encoder with AdamW and the layers the
checkpoint lacks (the dual encoder's scale, the cross-encoder's head) at their own rate,
``head_lr``; it scores held-out labelled questions (the blend questions) after every epoch
(accuracy and MAP@3: a learning curve) and keeps the best epoch's weights. On a GPU it runs in
mixed precision (bfloat16 autocast where the device supports it, else float16 with a gradient
scaler), with optional gradient checkpointing and accumulation, so a large encoder at 1280 tokens
fits one GPU.

CPU default: the bundled all-MiniLM-L6-v2 as a dual encoder. Either kind takes any encoder by
hub id or folder (all-mpnet-base-v2 is bundled; deberta-v3-large is the GPU recipe's).

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
from pipeline.devices import torch_device, weight_precision
from pipeline.metrics import average_precisions
from pipeline.models import ResolvedModel, resolve
from pipeline.progress import Progress
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
KINDS = ("dual_encoder", "cross_encoder")
FORMATS = {"dual_encoder": "option-sentence-dual-encoder/1",
           "cross_encoder": "option-context-cross-encoder/1"}

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

    # Here, not at the top: only the dual encoder splits sentences (blingfire), so the
    # cross-encoder runs where only torch and transformers are installed (bench/gpu_smoke.py).
    from pipeline.answering.readers.similarity import context_sentences, option_texts

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


def encode_pairs(tokenizer: Any, items: Sequence[Example], max_length: int) -> dict:
    """The tensors of a batch of questions for the cross-encoder: every (question + option,
    context) pair, flattened, cut ``longest_first`` to ``max_length`` tokens (the context is cut
    before the question and option), with ``option_owner``, ``option_slot`` and ``counts`` as
    :func:`encode` has them."""
    import torch

    from pipeline.answering.readers.cross_encoder import pair_texts

    pairs = [(pair, i, slot) for i, (question, context) in enumerate(items)
             for slot, pair in enumerate(pair_texts(question, context))]
    tokens = tokenizer([first for (first, _), _, _ in pairs],
                       [second for (_, second), _, _ in pairs], truncation="longest_first",
                       max_length=max_length, padding=True, return_tensors="pt")
    return {"pairs": dict(tokens),
            "option_owner": torch.tensor([i for _, i, _ in pairs], dtype=torch.long),
            "option_slot": torch.tensor([slot for _, _, slot in pairs], dtype=torch.long),
            "counts": torch.tensor([len(q.options) for q, _ in items], dtype=torch.long)}


def encode_for(kind: str, tokenizer: Any, items: Sequence[Example], max_length: int) -> dict:
    """The batch tensors ``kind``'s network reads."""
    return (encode_pairs if kind == "cross_encoder" else encode)(tokenizer, items, max_length)


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown reader kind {kind!r}: use one of {KINDS}")


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


def reader_settings(folder: Path) -> dict:
    """The settings a trained reader was saved with (its kind among them)."""
    if not (folder / READER_FILE).is_file():
        raise FileNotFoundError(f"{folder} holds no trained reader ({READER_FILE}): train "
                                "it first (the trained_reader asset)")
    settings = json.loads((folder / READER_FILE).read_text())
    kinds = {value: key for key, value in FORMATS.items()}
    if settings.get("format") not in kinds:
        raise ValueError(f"{folder / READER_FILE}: unknown reader format "
                         f"{settings.get('format')!r} (known: {sorted(kinds)})")
    return {**settings, "kind": kinds[settings["format"]]}


def load_scorer(folder: Path, *, fresh_head: bool = False,
                kind: str = "dual_encoder") -> tuple[Any, Any, dict]:
    """Scorer, tokenizer and reader settings from ``folder``: a trained reader (of the kind its
    ``reader.json`` names), or (with ``fresh_head``) a base encoder as a ``kind`` network with
    new head layers."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from pipeline.answering.readers import cross_encoder
    from pipeline.answering.readers.option_scorer import OptionScorer

    check_kind(kind)
    settings = {} if fresh_head else reader_settings(folder)
    kind = settings.get("kind", kind)
    if kind == "cross_encoder":
        scorer, tokenizer = cross_encoder.load(folder, fresh_head=fresh_head)
        return scorer, tokenizer, settings
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoder = AutoModel.from_pretrained(folder, dtype=torch.float32, add_pooling_layer=False) \
        if _has_pooler(folder) else AutoModel.from_pretrained(folder, dtype=torch.float32)
    scorer = OptionScorer(encoder).float()
    if not fresh_head:
        scorer.log_scale.data = load_file(str(folder / HEAD_FILE))["log_scale"]
    return scorer, tokenizer, settings


def _has_pooler(folder: Path) -> bool:
    """BERT-like configs accept ``add_pooling_layer``; the pooler is unused and untrained here."""
    config = json.loads((folder / "config.json").read_text()) if (
        folder / "config.json").is_file() else {}
    return config.get("model_type") in {"bert", "roberta", "xlm-roberta", "mpnet"}


def save_scorer(scorer: Any, tokenizer: Any, folder: Path, settings: dict) -> None:
    from safetensors.torch import save_file

    from pipeline.answering.readers import cross_encoder

    folder.mkdir(parents=True, exist_ok=True)
    if scorer.kind == "cross_encoder":
        cross_encoder.save(scorer, tokenizer, folder)
    else:
        scorer.encoder.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        save_file({"log_scale": scorer.log_scale.detach().cpu().contiguous()},
                  str(folder / HEAD_FILE))
    (folder / READER_FILE).write_text(json.dumps({"format": FORMATS[scorer.kind], **settings},
                                                 indent=1))


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


def compute_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """The dtype the reader computes in on ``device`` (its weights stay float32): float32 on a
    CPU, bfloat16 or float16 on a GPU (:func:`pipeline.devices.weight_precision`), by autocast."""
    import torch

    chosen = weight_precision(device, precision)
    if chosen not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"the multiple-choice reader computes in float32, bfloat16 or "
                         f"float16, not {chosen}")
    return getattr(torch, chosen)


def checkpointing(model: Any, on: bool) -> None:
    """Turn the recomputation of activations in the backward pass on or off: transformers 5
    names it activation checkpointing, earlier versions (a stock GPU image's) gradient
    checkpointing."""
    if hasattr(model, "activation_checkpointing_enable"):
        if on:
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.activation_checkpointing_disable()
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


def _autocast(device: torch.device, dtype: torch.dtype) -> Any:
    import torch

    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def score_examples(scorer: Any, tokenizer: Any, items: Sequence[Example], max_length: int,
                   batch_size: int, device: torch.device,
                   dtype: torch.dtype | None = None) -> np.ndarray:
    """``(n, MAX_OPTIONS)`` logits of ``(question, context)`` pairs with the scorer in eval
    mode (computing in ``dtype``, float32 by default), NaN past each question's options."""
    import torch

    rows = []
    was_training = scorer.training
    scorer.eval()
    with torch.inference_mode(), _autocast(device, dtype or torch.float32):
        for i in range(0, len(items), batch_size):
            batch = _to(encode_for(scorer.kind, tokenizer, items[i:i + batch_size],
                                   max_length), device)
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
          out_dir: str | Path, *, eval_examples: Sequence[Example] = (), epochs: float = 1.0,
          max_steps: int | None = None, batch_size: int = 8, grad_accum: int = 1,
          lr: float = 2e-5, head_lr: float = 1e-2, weight_decay: float = 0.01,
          warmup: float = 0.1, max_length: int = DEFAULT_MAX_LENGTH, seed: int = 0,
          log: Callable[[str], None] = print,
          device: str = "auto", teacher: Sequence[np.ndarray | None] | None = None,
          gold_weight: float = 1.0, temperature: float = 1.0, kind: str = "dual_encoder",
          precision: str = "auto", gradient_checkpointing: bool = False) -> TrainReport:
    """Fine-tune a ``kind`` reader on ``(question, context)`` examples; save the best.

    With ``teacher`` (one row of letter log-probabilities per example, one value per option
    the question has, optionally NaN-padded to ``MAX_OPTIONS``; or None) the loss
    is :func:`~pipeline.answering.readers.option_scorer.mixed_loss`: ``gold_weight`` of
    cross-entropy on the gold answer and the rest KL divergence to the teacher at
    ``temperature``; an example without an answer learns from its teacher alone. Without it,
    plain cross-entropy, and every example needs an answer.

    A plain torch loop: AdamW (encoder at ``lr``, the layers the checkpoint lacks at
    ``head_lr``) with linear warm-up then linear decay, gradient accumulation, clipping at 1;
    computing in :func:`compute_dtype` (``precision`` auto: float32 on a CPU, bfloat16 or
    float16 on a GPU, float16 with a gradient scaler), with the encoder's activations
    recomputed in the backward pass when ``gradient_checkpointing`` is on. It runs ``epochs`` passes
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
    check_kind(kind)
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
    scorer, tokenizer, _ = load_scorer(source, fresh_head=True, kind=kind)
    target = torch_device(device)
    dtype = compute_dtype(target, precision)
    scaler = torch.amp.GradScaler(target.type, enabled=dtype == torch.float16)
    if gradient_checkpointing:
        checkpointing(scorer.encoder, True)
    scorer.to(target).train()

    per_epoch = math.ceil(len(examples) / (batch_size * grad_accum))
    planned = math.ceil(per_epoch * epochs)
    steps_total = max(min(planned, max_steps) if max_steps is not None else planned, 1)
    no_decay = ("bias", "LayerNorm.weight", "layernorm", "norm.weight")
    encoder_params = scorer.body_parameters()
    groups = [
        {"params": [p for n, p in encoder_params if not any(k in n for k in no_decay)],
         "weight_decay": weight_decay, "lr": lr},
        {"params": [p for n, p in encoder_params if any(k in n for k in no_decay)],
         "weight_decay": 0.0, "lr": lr},
        {"params": scorer.head_parameters(), "weight_decay": 0.0, "lr": head_lr},
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
    progress = Progress("training", steps_total, log, unit="steps")
    log(f"training {source.name} as a {kind} on {target} in {str(dtype)[6:]}: "
        f"{len(examples)} examples, {steps_total} steps of "
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
                                    target, dtype)
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
            batch = _to(encode_for(kind, tokenizer, [examples[i] for i in chosen], max_length),
                        target)
            labels = torch.tensor([labels_all[i] for i in chosen], device=target)
            soft = torch.as_tensor(soft_all[chosen], dtype=torch.float32, device=target)
            mask = torch.as_tensor(option_mask(counts_all[chosen]), device=target)
            with _autocast(target, dtype):
                logits = scorer(**batch)
            # The loss in float32 whatever the compute dtype (ABSENT and the softmax need it).
            loss = mixed_loss(logits.float(), labels, soft, gold_weight, temperature,
                              mask) / grad_accum
            scaler.scale(loss).backward()
            step_loss += loss.item()
            seen += len(chosen)
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(scorer.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(step_loss)
        epoch_losses.append(step_loss)
        progress.advance(1, note=f"loss {step_loss:.4f}")
        if len(losses) % per_epoch == 0 or len(losses) == steps_total:
            evaluate()

    assert best is not None
    scorer.load_state_dict(best[2])
    out = Path(out_dir)
    if gradient_checkpointing:
        checkpointing(scorer.encoder, False)
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


def tokens_read(tokenizer: Any, items: Sequence[Example], max_length: int,
                kind: str = "dual_encoder") -> int:
    """How many tokens a ``kind`` reader encodes for ``items`` (without padding: options and
    context sentences, or the cross-encoder's pairs)."""
    if not items:
        return 0
    batch = encode_for(kind, tokenizer, items, max_length)
    return int(sum(value["attention_mask"].sum() for value in batch.values()
                   if isinstance(value, dict)))


class MultipleChoiceReader:
    """A fine-tuned reader of either kind that scores each question's own options (2 to 10;
    ``runtime`` int8: its linear layers dynamically quantised, on the CPU; on a GPU it computes
    in half precision)."""

    def __init__(self, model_dir: ResolvedModel | str | Path, batch_size: int = 8,
                 device: str = "auto", max_length: int | None = None,
                 runtime: str = "fp32") -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}: use one of {RUNTIMES}")
        source = model_path(model_dir)
        self.scorer, self.tokenizer, settings = load_scorer(source)
        self.kind = settings["kind"]
        # int8 kernels are the CPU's: with device auto it runs there, even beside a GPU.
        self.device = torch_device("cpu" if runtime == "int8" and device == "auto" else device)
        if runtime == "int8":
            if self.device.type != "cpu":
                raise ValueError(f"the int8 runtime runs on the CPU only, not {device}")
            self.scorer = quantized(self.scorer.eval())
        self.scorer.to(self.device).eval()
        self.dtype = compute_dtype(self.device)
        self.max_length = max_length or int(settings.get("max_length", DEFAULT_MAX_LENGTH))
        self.batch_size = batch_size
        self.last_seconds_per_question = 0.0

    def score_many(self, items: Sequence[Example]) -> np.ndarray:
        """``(n, MAX_OPTIONS)`` logits of ``(question, context)`` pairs, NaN past each
        question's options; also records the seconds per question in
        :attr:`last_seconds_per_question`."""
        start = time.perf_counter()
        logits = score_examples(self.scorer, self.tokenizer, items, self.max_length,
                                self.batch_size, self.device, self.dtype)
        self.last_seconds_per_question = (time.perf_counter() - start) / max(len(items), 1)
        return logits

    def score(self, question: Question, context: str) -> np.ndarray:
        """One logit per option the question has, in order."""
        return self.score_many([(question, context)])[0, : len(question.options)]
