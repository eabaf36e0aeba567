"""The multiple-choice encoder reader: fine-tune ``AutoModelForMultipleChoice`` and score options.

Why: the strongest Kaggle solutions read the retrieved context with a fine-tuned encoder that
sees (context + question) paired with each option and outputs one logit per option; a softmax
over the five options is trained with cross-entropy on the answer. Unlike the causal-LM reader it
has no letter position bias (the options are scored independently by the same weights) but it
must be fine-tuned first: the multiple-choice head is new.

Input layout: the first segment is the question followed by the context, the second segment is
one option, and only the first segment is truncated (from its end) to fit ``max_length`` tokens.
The question comes first so that truncation cuts the least relevant end of the context, never
the question or the option.

CPU default (what these machines can run): the bundled sentence-transformers/all-MiniLM-L6-v2
encoder (a 6-layer BERT) with a new head, ``max_length=256``, a few hundred optimizer steps over
the training questions (stem_1k's train split), batch 4-8 questions, lr 2e-5..5e-5. It learns to
find the option stated in the context; do not expect Kaggle-level accuracy from it.

GPU recipe (the 4th-place / top solutions): microsoft/deberta-v3-large, ``max_length`` 768-1280
tokens, tens of thousands of extra training questions (the public 60k / 99k sets with retrieved
contexts), 1-3 epochs, lr ~1e-5..2e-5 with warmup, gradient accumulation to an effective batch of
16-32, fp16/bf16 autocast with float32 master weights. The same functions run it: pass a
different ``model_dir`` (any hub id or folder resolved by :func:`pipeline.models.resolve`).

Weights are loaded in float32 explicitly: transformers 5 keeps a checkpoint's dtype, and AdamW
updates underflow in fp16 parameters.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.devices import torch_device
from pipeline.models import ResolvedModel, resolve
from pipeline.questions import LETTERS, Question

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MAX_LENGTH = 256
N_OPTIONS = len(LETTERS)

Example = tuple[Question, str]  # a question and the context retrieved for it


@dataclass(frozen=True)
class TrainReport:
    """What a training run did: losses per optimizer step (mean over its micro-batches)."""

    out_dir: Path
    steps: int
    examples: int
    epochs_run: float
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    model: str = ""


def model_path(model: ResolvedModel | str | Path) -> Path:
    """A folder for ``model``: a resolved model's path, a local folder, or a resolved hub id."""
    if isinstance(model, ResolvedModel):
        return model.path
    if Path(model).is_dir():
        return Path(model)
    return resolve(str(model)).path


def first_segment(question: Question, context: str) -> str:
    """Question, then context: the part that truncation may shorten from its end."""
    return f"{question.prompt.strip()}\n{context.strip()}"


def encode(tokenizer: object, items: Sequence[Example], max_length: int) -> dict:
    """Tensors shaped (n, 5, length): each (question + context, option) pair, padded per batch."""
    firsts = [first_segment(q, c) for q, c in items for _ in range(N_OPTIONS)]
    seconds = [option.strip() for q, _ in items for option in q.options]
    batch = tokenizer(firsts, seconds, truncation="only_first", max_length=max_length,
                      padding=True, return_tensors="pt")
    return {k: v.view(len(items), N_OPTIONS, -1) for k, v in batch.items()}


def label_of(question: Question) -> int:
    if question.answer not in LETTERS:
        raise ValueError(f"question {question.id} has no answer letter ({question.answer!r})")
    return LETTERS.index(question.answer)


def train(model_dir: ResolvedModel | str | Path, examples: Sequence[Example],
          out_dir: str | Path, *, epochs: float = 1.0, max_steps: int | None = None,
          batch_size: int = 8, grad_accum: int = 1, lr: float = 3e-5,
          weight_decay: float = 0.01, warmup: float = 0.1,
          max_length: int = DEFAULT_MAX_LENGTH, seed: int = 0,
          log: Callable[[str], None] = print, log_every: int = 10,
          device: str = "auto") -> TrainReport:
    """Fine-tune a multiple-choice model on ``(question, context)`` examples; save it to out_dir.

    A plain torch loop (no Trainer): AdamW with linear warmup then linear decay, gradient
    accumulation over ``grad_accum`` micro-batches of ``batch_size`` questions, gradient
    clipping at 1. Training runs ``epochs`` passes over the shuffled examples, or stops after
    ``max_steps`` optimizer steps when that comes first. The seed fixes the head's initialisation,
    the shuffling and dropout, so a rerun on CPU gives the same losses.
    """
    import torch
    from transformers import AutoModelForMultipleChoice, AutoTokenizer

    if not examples:
        raise ValueError("no training examples")
    labels_all = [label_of(q) for q, _ in examples]
    start = time.perf_counter()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    source = model_path(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForMultipleChoice.from_pretrained(source, dtype=torch.float32)
    target = torch_device(device)
    model.float().to(target).train()

    per_epoch = math.ceil(len(examples) / (batch_size * grad_accum))
    planned = math.ceil(per_epoch * epochs)
    steps_total = min(planned, max_steps) if max_steps is not None else planned
    steps_total = max(steps_total, 1)
    no_decay = ("bias", "LayerNorm.weight", "layernorm", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
         "weight_decay": weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
         "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=lr)
    warmup_steps = int(warmup * steps_total)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (steps_total - step) / max(1, steps_total - warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    shuffler = random.Random(seed)
    order: list[int] = []
    losses: list[float] = []
    micro_batches = 0
    log(f"training {source.name}: {len(examples)} examples, {steps_total} steps of "
        f"{batch_size}x{grad_accum} questions, lr {lr}, max_length {max_length}")
    while len(losses) < steps_total:
        step_loss = 0.0
        for _ in range(grad_accum):
            if len(order) < batch_size:
                epoch = list(range(len(examples)))
                shuffler.shuffle(epoch)
                order.extend(epoch)
            chosen, order = order[:batch_size], order[batch_size:]
            batch = {k: v.to(target) for k, v in
                     encode(tokenizer, [examples[i] for i in chosen], max_length).items()}
            labels = torch.tensor([labels_all[i] for i in chosen], device=target)
            loss = model(**batch, labels=labels).loss / grad_accum
            loss.backward()
            step_loss += loss.item()
            micro_batches += 1
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(step_loss)
        if len(losses) % log_every == 0 or len(losses) == steps_total:
            log(f"step {len(losses)}/{steps_total} loss {step_loss:.4f}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.cpu().save_pretrained(out)
    tokenizer.save_pretrained(out)
    seconds = time.perf_counter() - start
    return TrainReport(out, len(losses), len(examples),
                       micro_batches * batch_size / len(examples), losses, seconds,
                       str(source))


class MultipleChoiceReader:
    """A fine-tuned multiple-choice model that scores the five options of each question."""

    def __init__(self, model_dir: ResolvedModel | str | Path,
                 max_length: int = DEFAULT_MAX_LENGTH, batch_size: int = 8,
                 device: str = "auto") -> None:
        import torch
        from transformers import AutoModelForMultipleChoice, AutoTokenizer

        source = model_path(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(source)
        self.model = AutoModelForMultipleChoice.from_pretrained(source, dtype=torch.float32)
        self.device = torch_device(device)
        self.model.to(self.device).eval()
        self.max_length = max_length
        self.batch_size = batch_size
        self.last_seconds_per_question = 0.0

    def score_many(self, items: Sequence[Example]) -> np.ndarray:
        """(n, 5) logits of ``(question, context)`` pairs; also records the seconds per question
        in :attr:`last_seconds_per_question`."""
        import torch

        start = time.perf_counter()
        rows = []
        with torch.inference_mode():
            for i in range(0, len(items), self.batch_size):
                batch = encode(self.tokenizer, items[i:i + self.batch_size], self.max_length)
                batch = {k: v.to(self.device) for k, v in batch.items()}
                rows.append(self.model(**batch).logits.double().cpu().numpy())
        self.last_seconds_per_question = (time.perf_counter() - start) / max(len(items), 1)
        return np.concatenate(rows) if rows else np.zeros((0, N_OPTIONS))
