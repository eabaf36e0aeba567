"""The multiple-choice encoder reader: fine-tune an encoder to score options against a context.

Why: the strongest Kaggle solutions read the retrieved context with a fine-tuned encoder that
sees (question, option, context) and outputs one logit per option; a softmax over the five
options is trained with cross-entropy on the answer. Unlike the causal-LM reader it has no
letter position bias (the options are scored independently by the same weights), but its head
is new, so it must be fine-tuned before its logits mean anything.

What the first version got wrong, and what this one does instead:

* **The head reads what the encoder was trained to produce.** ``AutoModelForMultipleChoice`` on
  a sentence-transformers checkpoint reads BERT's [CLS]/pooler path, which all-MiniLM-L6-v2
  never trained (it was trained on the mean of its token vectors). :class:`OptionScorer` puts a
  linear head on the attention-masked *mean* of the last hidden states.
* **One context for all five options, each option whole.** Per question the context is cut to
  the room the longest (question, option) pair leaves in ``max_length`` (:func:`encode`), so
  every option is read against exactly the same context tokens; truncating each pair on its own
  gave the longest option the least context.
* **A schedule that can learn on a CPU.** The new head gets its own, larger learning rate
  (``head_lr``): at the encoder's rate it barely moves in a few hundred steps. After each epoch
  the reader is scored on held-out labelled questions (the blend questions: accuracy and
  MAP@3), and the best epoch's weights are the ones kept.

Input layout: segment A is the question, a separator and the option; segment B is the context
(best passages first, so the cut drops the least relevant end).

CPU default: the bundled all-MiniLM-L6-v2 (6 layers, 384 wide). GPU recipe (the 4th-place and
other top solutions): microsoft/deberta-v3-large with ``max_length`` 768 to 1280 and tens of
thousands of training questions; the same functions run it, with any hub id or folder.

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

from pipeline.devices import torch_device
from pipeline.models import ResolvedModel, resolve
from pipeline.questions import LETTERS, Question

if TYPE_CHECKING:
    import torch

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MAX_LENGTH = 256
N_OPTIONS = len(LETTERS)
HEAD_FILE = "head.safetensors"
READER_FILE = "reader.json"
FORMAT = "mean-pooled-option-scorer/1"

Example = tuple[Question, str]  # a question and the context retrieved for it


def model_path(model: ResolvedModel | str | Path) -> Path:
    """A folder for ``model``: a resolved model's path, a local folder, or a resolved hub id."""
    if isinstance(model, ResolvedModel):
        return model.path
    if Path(model).is_dir():
        return Path(model)
    return resolve(str(model)).path


def _segment_a(tokenizer: Any, question: Question, option: str) -> str:
    return f"{question.prompt.strip()} {tokenizer.sep_token} {option.strip()}"


def _cut(tokenizer: Any, text: str, tokens: int) -> str:
    """``text`` up to the end of its ``tokens``-th token (nothing for 0)."""
    if tokens <= 0:
        return ""
    offsets = tokenizer(text, add_special_tokens=False,
                        return_offsets_mapping=True)["offset_mapping"]
    return text if len(offsets) <= tokens else text[: offsets[tokens - 1][1]]


def encode(tokenizer: Any, items: Sequence[Example], max_length: int) -> dict:
    """Tensors shaped (n, 5, length): each (question + option, context) pair, padded per batch.

    Per question, the context is cut to the room that the longest (question, option) segment
    leaves, so all five options see the same context tokens and every option is whole; only a
    question whose own longest option leaves no room at all loses context entirely.
    """
    firsts: list[str] = []
    seconds: list[str] = []
    special = tokenizer.num_special_tokens_to_add(pair=True)
    for question, context in items:
        segments = [_segment_a(tokenizer, question, option) for option in question.options]
        lengths = [len(ids) for ids in tokenizer(segments, add_special_tokens=False)["input_ids"]]
        shared = _cut(tokenizer, context.strip(), max_length - special - max(lengths))
        firsts += segments
        seconds += [shared] * N_OPTIONS
    batch = tokenizer(firsts, seconds, truncation="longest_first", max_length=max_length,
                      padding=True, return_tensors="pt")
    return {k: v.view(len(items), N_OPTIONS, -1) for k, v in batch.items()}


def label_of(question: Question) -> int:
    if question.answer not in LETTERS:
        raise ValueError(f"question {question.id} has no answer letter ({question.answer!r})")
    return LETTERS.index(question.answer)


def load_scorer(folder: Path, *, fresh_head: bool = False) -> tuple[Any, Any, dict]:
    """Scorer, tokenizer and reader settings from ``folder``: a trained reader, or (with
    ``fresh_head``) a base encoder that gets a new head."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from pipeline.readers.option_scorer import OptionScorer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoder = AutoModel.from_pretrained(folder, dtype=torch.float32, add_pooling_layer=False) \
        if _has_pooler(folder) else AutoModel.from_pretrained(folder, dtype=torch.float32)
    scorer = OptionScorer(encoder).float()
    settings: dict = {}
    if not fresh_head:
        if not (folder / HEAD_FILE).is_file():
            raise FileNotFoundError(f"{folder} holds no trained head ({HEAD_FILE}): train it "
                                    "first (the trained_reader asset)")
        scorer.head.load_state_dict(load_file(str(folder / HEAD_FILE)))
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
    save_file({k: v.detach().cpu().contiguous() for k, v in scorer.head.state_dict().items()},
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
    """(n, 5) logits of ``(question, context)`` pairs with the scorer in eval mode."""
    import torch

    rows = []
    was_training = scorer.training
    scorer.eval()
    with torch.inference_mode():
        for i in range(0, len(items), batch_size):
            batch = {k: v.to(device) for k, v in
                     encode(tokenizer, items[i:i + batch_size], max_length).items()}
            rows.append(scorer(**batch).double().cpu().numpy())
    scorer.train(was_training)
    return np.concatenate(rows) if rows else np.zeros((0, N_OPTIONS))


def _accuracy_and_map(logits: np.ndarray, items: Sequence[Example]) -> tuple[float, float]:
    from pipeline.blend import average_precisions

    gold = np.array([label_of(q) for q, _ in items])
    return (float((logits.argmax(axis=1) == gold).mean()),
            float(average_precisions(logits, gold).mean()))


def train(model_dir: ResolvedModel | str | Path, examples: Sequence[Example],
          out_dir: str | Path, *, eval_examples: Sequence[Example] = (), epochs: float = 2.0,
          max_steps: int | None = None, batch_size: int = 8, grad_accum: int = 1,
          lr: float = 5e-5, head_lr: float = 1e-3, weight_decay: float = 0.01,
          warmup: float = 0.1, max_length: int = DEFAULT_MAX_LENGTH, seed: int = 0,
          log: Callable[[str], None] = print, log_every: int = 10,
          device: str = "auto") -> TrainReport:
    """Fine-tune an :class:`OptionScorer` on ``(question, context)`` examples; save the best.

    A plain torch loop: AdamW (encoder at ``lr``, the new head at ``head_lr``) with linear
    warm-up then linear decay, gradient accumulation, clipping at 1. It runs ``epochs`` passes
    over the shuffled examples, or ``max_steps`` optimizer steps when that comes first. After
    each epoch (and at the end) the model scores ``eval_examples``; the weights of the best
    MAP@3 among those evaluations are saved (the last ones when there are no eval examples).
    The seed fixes the head's initialisation, the shuffling and dropout.
    """
    import torch

    if not examples:
        raise ValueError("no training examples")
    labels_all = [label_of(q) for q, _ in examples]
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
        {"params": list(scorer.head.parameters()), "weight_decay": 0.0, "lr": head_lr},
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
    best: tuple[float, float, dict] | None = None  # (map@3, epoch, head+encoder state)
    seen = 0
    epoch_losses: list[float] = []
    log(f"training {source.name}: {len(examples)} examples, {steps_total} steps of "
        f"{batch_size}x{grad_accum} questions, lr {lr} (head {head_lr}), max_length "
        f"{max_length}, evaluated on {len(eval_examples)} held-out questions")

    def evaluate() -> None:
        nonlocal best
        epoch = round(seen / len(examples), 3)
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

    while len(losses) < steps_total:
        step_loss = 0.0
        for _ in range(grad_accum):
            if len(order) < batch_size:
                epoch_order = list(range(len(examples)))
                shuffler.shuffle(epoch_order)
                order.extend(epoch_order)
            chosen, order = order[:batch_size], order[batch_size:]
            batch = {k: v.to(target) for k, v in
                     encode(tokenizer, [examples[i] for i in chosen], max_length).items()}
            labels = torch.tensor([labels_all[i] for i in chosen], device=target)
            loss = torch.nn.functional.cross_entropy(scorer(**batch), labels) / grad_accum
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
        if seen // len(examples) > (seen - batch_size * grad_accum) // len(examples) \
                or len(losses) == steps_total:
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


class MultipleChoiceReader:
    """A fine-tuned :class:`OptionScorer` that scores the five options of each question."""

    def __init__(self, model_dir: ResolvedModel | str | Path, batch_size: int = 8,
                 device: str = "auto", max_length: int | None = None) -> None:
        source = model_path(model_dir)
        self.scorer, self.tokenizer, settings = load_scorer(source)
        self.device = torch_device(device)
        self.scorer.to(self.device).eval()
        self.max_length = max_length or int(settings.get("max_length", DEFAULT_MAX_LENGTH))
        self.batch_size = batch_size
        self.last_seconds_per_question = 0.0

    def score_many(self, items: Sequence[Example]) -> np.ndarray:
        """(n, 5) logits of ``(question, context)`` pairs; also records the seconds per question
        in :attr:`last_seconds_per_question`."""
        start = time.perf_counter()
        logits = score_examples(self.scorer, self.tokenizer, items, self.max_length,
                                self.batch_size, self.device)
        self.last_seconds_per_question = (time.perf_counter() - start) / max(len(items), 1)
        return logits
