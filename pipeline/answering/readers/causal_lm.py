"""A causal-LM reader: score a question's options by the next-token logits of their letters.

Why this design (the answer-letter approach of the Kaggle solutions): the prompt lists the
retrieved context, the question and the question's own options labelled A onwards (two to ten:
``A.`` .. ``D.`` for a four-option question, never a letter it lacks), and ends where the answer
letter is due; one forward pass then scores all the options at once by the logits of the tokens
``" A"`` .. (one per option). Only those letters' logits are read and log-softmaxed, so a letter
the question does not have takes no probability mass. Scoring each option's full text by its
likelihood would need one pass per option and favours short, common wordings.

Small LMs prefer some letters whatever the content (position bias). The 5th-place trick cancels
it: the question is asked again with its ``k`` options rotated cyclically (``min(permutations,
k)`` of the ``k`` rotations), each rotation's letter scores are mapped back to the original
options and averaged. Over all ``k`` rotations every option sits once in every slot, so the
average no longer depends on the order the options came in. Each rotation's letter logits are
turned into log-softmax over the question's letters before averaging, so a rotation with a
larger logit scale does not dominate.

The context is the long part of the prompt and is the same for every rotation: the prompt puts
it (with the question) first, encodes that prefix once and reuses its key/value cache for each
rotation's suffix (the options and the answer cue), so the context is not encoded once per
rotation. ``batch_size`` questions share a forward pass (on a GPU, where a batch costs little
more than one): their prefixes are right-padded into one pass, the cache is repeated once per
suffix of its question, and every suffix of every question is read in one more pass, its
positions continuing its own prefix with the padding masked out. The prefix and the suffix are
tokenised separately and concatenated as token ids, so the cached and the re-encoded paths see
exactly the same tokens (``reuse_prefix=False`` re-encodes, for checking and timing). Measured
on this project's 2-core CPU with 1 torch thread (while other jobs ran, so roughly),
SmolLM2-135M, a 400-token context, 5 rotations of a five-option question: 2.5 s per question
with the cache against 8.8 s re-encoding (3.5x); 1 rotation costs 2.0 s, so the four extra
rotations add only ~25 % once the context is cached.

The context is cut to ``max_context_tokens`` tokens from the end (the beginning is kept: the
contexts are built most relevant passage first).

Default model: the bundled Q4_1 GGUF of HuggingFaceTB/SmolLM2-135M-Instruct (transformers
dequantises it to float32; loading GGUF needs the ``gguf`` and ``accelerate`` packages). Any hub
id or local folder works through :func:`pipeline.models.resolve`; a larger instruct model
(Llama-2-7B / Mistral-7B class, as the Kaggle solutions used) is the GPU recipe.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.answering.readers import pad
from pipeline.devices import torch_device, weight_precision
from pipeline.models import ResolvedModel, resolve
from pipeline.questions.question import LETTERS, MAX_OPTIONS, MIN_OPTIONS, Question

if TYPE_CHECKING:
    import torch

# Context tokens in the heavy reader's prompt, about the best passage (256 read no better on a
# CPU at 1.7x the cost): the one default of both runtimes and of the heavy-reader settings.
DEFAULT_CONTEXT_TOKENS = 128

ANSWER_CUE = "Answer:"
SYSTEM = ("You answer multiple-choice science questions. Use the context. Reply with the "
          "letter of the correct option.")
# Per-option scoring (the 7th place's form): each option is proposed alone and the model says
# whether it is correct; the option's score is the log-odds of " yes" against " no".
OPTION_SYSTEM = ("You check answers to science questions. Use the context. Reply yes if the "
                 "proposed answer is correct, else no.")
SCORING = ("letter", "option")


def check_scoring(scoring: str) -> None:
    if scoring not in SCORING:
        raise ValueError(f"unknown scoring {scoring!r}: use one of {SCORING}")


def proposal_block(option: str) -> str:
    """The end of the user turn of a per-option prompt: one option, proposed alone."""
    return f"Proposed answer: {option.strip()}\nIs the proposed answer correct?\n"


def log_odds_scores(yes: np.ndarray, no: np.ndarray) -> np.ndarray:
    """Per-option scores of the yes/no form: the log-odds of "yes", log-softmaxed over the
    question's options so they read as the letter form's log-probabilities do."""
    odds = np.asarray(yes, dtype=np.float64) - np.asarray(no, dtype=np.float64)
    return odds - np.logaddexp.reduce(odds)


@dataclass(frozen=True)
class CausalLMScores:
    """Scores of a batch of questions: ``logits`` ``(n, MAX_OPTIONS)`` in the questions' own
    option order (higher is better), NaN past each question's options, and the wall-clock
    seconds spent per question (for cost comparisons)."""

    logits: np.ndarray
    seconds_per_question: float


def prompt_tokens(prompt: tuple[list[int], list[list[int]]]) -> int:
    """The tokens a question's prompt reads: its prefix with each suffix."""
    prefix, suffixes = prompt
    return sum(len(prefix) + len(suffix) for suffix in suffixes)


def check_options(options: Sequence[str]) -> None:
    """A letter prompt needs 2 to ``MAX_OPTIONS`` options."""
    if not MIN_OPTIONS <= len(options) <= MAX_OPTIONS:
        raise ValueError(f"{len(options)} options; a question has {MIN_OPTIONS} to "
                         f"{MAX_OPTIONS}")


def check_permutations(permutations: int) -> None:
    if not 1 <= permutations <= MAX_OPTIONS:
        raise ValueError(f"permutations must be 1..{MAX_OPTIONS}, not {permutations}")


def question_block(prompt: str, context: str) -> str:
    """The first part of the user turn: the context, then the question."""
    return f"Context:\n{context.strip()}\n\nQuestion: {prompt.strip()}\n"


def options_block(options: Sequence[str]) -> str:
    """The options, one per line, labelled with the first ``len(options)`` letters."""
    check_options(options)
    return "".join(f"{letter}. {option.strip()}\n"
                   for letter, option in zip(LETTERS[: len(options)], options, strict=True))


def user_message(prompt: str, options: Sequence[str], context: str) -> str:
    """The user turn of the letter prompt, the same for every runtime."""
    return question_block(prompt, context) + options_block(options)


def rotation(options: Sequence[str], shift: int) -> list[str]:
    """The ``k`` options rotated left by ``shift``: slot ``i`` shows original option
    ``(i + shift) % k``."""
    k = len(options)
    return [options[(i + shift) % k] for i in range(k)]


def rotations(permutations: int, options: int) -> int:
    """How many rotations a question of ``options`` options is asked in: at most its own
    ``options`` distinct ones."""
    return min(permutations, options)


def unrotate(total: np.ndarray, slot_scores: np.ndarray, shift: int) -> None:
    """Add a rotation's per-slot scores to ``total`` under the original options' order."""
    k = len(total)
    for slot in range(k):
        total[(slot + shift) % k] += slot_scores[slot]


def letter_token(tokenize: Callable[[str], Sequence[int]], letter: str) -> int:
    """The token a model writes for ``letter`` right after the answer cue: the last token of
    ``"Answer: A"``, found where ``"Answer:"`` tokenises as its prefix.

    Why not the token of ``" A"``: SentencePiece tokenizers (Llama, Mistral) add a dummy prefix
    space, so ``" A"`` alone is two tokens (``▁`` and ``▁A``) while after ``Answer:`` the letter
    is the one token ``▁A``; byte-level BPE tokenizers (Qwen, GPT-2, SmolLM) give ``Ġ A`` either
    way. Tokenising the letter in the context the prompt puts it in is right for both.
    """
    cue = list(tokenize(ANSWER_CUE))
    full = list(tokenize(f"{ANSWER_CUE} {letter}"))
    if full[: len(cue)] != cue or len(full) != len(cue) + 1:
        raise ValueError(f"the tokenizer does not write {letter!r} as one token after "
                         f"{ANSWER_CUE!r} ({cue} then {full}); the answer-letter approach needs "
                         "single-token letters (use scoring: option)")
    return full[-1]


class AnswerTokens:
    """The token a model writes right after the answer cue for each answer word, looked up
    once each (:func:`letter_token`): the letters as questions need them, and "yes" and "no"
    for per-option scoring. One cache for both runtimes."""

    def __init__(self, tokenize: Callable[[str], Sequence[int]]) -> None:
        self.tokenize = tokenize
        self._ids: dict[str, int] = {}

    def __call__(self, word: str) -> int:
        if word not in self._ids:
            self._ids[word] = letter_token(self.tokenize, word)
        return self._ids[word]

    def letters(self, count: int) -> list[int]:
        """The tokens of the first ``count`` letters, A onwards."""
        return [self(letter) for letter in LETTERS[:count]]

    def yes_no(self) -> list[int]:
        return [self("yes"), self("no")]


def load_causal_lm(model: ResolvedModel, device: torch.device | None = None,
                   precision: str = "auto") -> tuple[torch.nn.Module, object]:
    """Model and tokenizer in eval mode, the weights loaded straight onto ``device`` in the
    precision :func:`pipeline.devices.weight_precision` picks (float32 on a CPU, bfloat16 or
    float16 on a GPU, or 8/4 bits through bitsandbytes): a 7B model never passes through a
    float32 copy in RAM. A GGUF file is loaded (dequantised) through ``gguf_file``.

    The dtype is always explicit: transformers 5 otherwise keeps a checkpoint's dtype.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or torch.device("cpu")
    chosen = weight_precision(device, precision)
    extra: dict[str, Any] = {"gguf_file": model.file} if model.file else {}
    if chosen in ("8bit", "4bit"):
        extra["quantization_config"] = _bitsandbytes(chosen, device)
        dtype = torch.bfloat16
    else:
        dtype = getattr(torch, chosen)
    tokenizer = AutoTokenizer.from_pretrained(model.path, **{
        k: v for k, v in extra.items() if k == "gguf_file"})
    lm = AutoModelForCausalLM.from_pretrained(model.path, dtype=dtype,
                                              device_map={"": str(device)}, **extra)
    lm.eval()
    return lm, tokenizer


def _bitsandbytes(precision: str, device: torch.device) -> Any:
    """The quantisation config of an 8- or 4-bit load (NF4 with bfloat16 compute, as QLoRA)."""
    import torch
    from transformers import BitsAndBytesConfig

    if device.type != "cuda":
        raise ValueError(f"precision {precision} loads through bitsandbytes, which needs a "
                         f"CUDA GPU; the device is {device}")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"precision {precision} needs bitsandbytes: install the GPU extra "
                          "(pip install -e '.[gpu]')") from exc
    if precision == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=torch.bfloat16)


class CausalLMReader:
    """Answer-letter scorer on a causal LM (see the module docstring for the method)."""

    def __init__(self, model: ResolvedModel | str, *,
                 max_context_tokens: int = DEFAULT_CONTEXT_TOKENS,
                 permutations: int = 1, reuse_prefix: bool = True,
                 chat_template: bool = True, device: str = "auto",
                 precision: str = "auto", scoring: str = "letter",
                 batch_size: int = 1) -> None:
        check_permutations(permutations)
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.batch_size = batch_size
        check_scoring(scoring)
        if max_context_tokens < 0:
            raise ValueError("max_context_tokens must be >= 0")
        self.scoring = scoring
        self.resolved = model if isinstance(model, ResolvedModel) else resolve(model)
        self.device = torch_device(device)
        self.precision = weight_precision(self.device, precision)
        self.model, self.tokenizer = load_causal_lm(self.resolved, self.device, self.precision)
        self.max_context_tokens = max_context_tokens
        self.permutations = permutations
        self.reuse_prefix = reuse_prefix
        # An instruct model answers better inside its chat format; a base model has no template.
        self.chat = chat_template and bool(getattr(self.tokenizer, "chat_template", None))
        self.answers = AnswerTokens(self._ids)
        # Fail at once for a tokenizer without one-token answers.
        if scoring == "option":
            self.answers.yes_no()
        else:
            self.answers.letters(MIN_OPTIONS)

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate_context(self, context: str) -> list[int]:
        """The context's token ids, cut from the end to the token budget."""
        return self._ids(context)[: self.max_context_tokens]

    def _options(self, question: Question | str, options: Sequence[str] | None) -> Sequence[str]:
        if options is None:
            if not isinstance(question, Question):
                raise ValueError("options are needed when the question is a string")
            options = question.options
        check_options(options)
        return options

    def prompt_ids(self, question: Question | str, context: str,
                   options: Sequence[str] | None = None) -> tuple[list[int], list[list[int]]]:
        """Token ids of the shared prefix and of each rotation's suffix.

        The prefix is (chat header,) context and question; a suffix lists the rotated options
        (only the question's own, lettered A onwards) and ends with the answer cue, so the next
        token is the answer letter. There are ``min(permutations, k)`` suffixes for ``k``
        options.
        """
        prompt = question.prompt if isinstance(question, Question) else question
        options = self._options(question, options)
        system = OPTION_SYSTEM if self.scoring == "option" else SYSTEM
        if self.chat:
            head = f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n"
            tail = f"<|im_end|>\n<|im_start|>assistant\n{ANSWER_CUE}"
            if "<|im_start|>" not in (self.tokenizer.chat_template or ""):
                # Not a ChatML model: let the template say where the assistant turn begins.
                rendered = self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": "\x00"}], tokenize=False,
                    add_generation_prompt=True)
                head, _, rest = rendered.partition("\x00")
                tail = rest + ANSWER_CUE
        else:
            head, tail = f"{system}\n\n", f"\n{ANSWER_CUE}"
        context_ids = self.truncate_context(context)
        block = question_block(prompt, "\x00")
        before, _, after = block.partition("\x00")
        prefix = self._ids(head + before) + context_ids + self._ids(after)
        bos = self.tokenizer.bos_token_id
        if not self.chat and bos is not None and getattr(self.tokenizer, "add_bos_token", False):
            prefix = [bos, *prefix]
        if self.scoring == "option":
            return prefix, [self._ids(proposal_block(option)) + self._ids(tail)
                            for option in options]
        suffixes = []
        for shift in range(rotations(self.permutations, len(options))):
            suffixes.append(self._ids(options_block(rotation(options, shift)))
                            + self._ids(tail))
        return prefix, suffixes

    def prompt_text(self, question: Question | str, context: str,
                    options: Sequence[str] | None = None, shift: int = 0) -> str:
        """The text of one rotation's whole prompt (prefix and suffix), as the model reads it."""
        prefix, suffixes = self.prompt_ids(question, context, options)
        return self.tokenizer.decode(prefix + suffixes[shift])

    def score(self, question: Question | str, context: str,
              options: Sequence[str] | None = None) -> np.ndarray:
        """One score per option: the mean over rotations of the letters' log-softmax, or in
        per-option scoring the log-softmax over options of each one's yes/no log-odds."""
        options = self._options(question, options)
        prompt = self.prompt_ids(question, context, options)
        self.last_tokens = prompt_tokens(prompt)
        return self._score_prompts([prompt], [len(options)])[0]

    def score_batch(self, items: Sequence[tuple[Question, str]]
                    ) -> tuple[list[np.ndarray], list[int]]:
        """Scores of ``(question, context)`` pairs, ``batch_size`` questions per forward pass,
        with each question's prompt tokens (all its rotations)."""
        scores: list[np.ndarray] = []
        tokens: list[int] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start:start + self.batch_size]
            prompts = [self.prompt_ids(question, context) for question, context in chunk]
            scores += self._score_prompts(prompts, [len(q.options) for q, _ in chunk])
            tokens += [prompt_tokens(prompt) for prompt in prompts]
        return scores, tokens

    def _score_prompts(self, prompts: Sequence[tuple[list[int], list[list[int]]]],
                       options: Sequence[int]) -> list[np.ndarray]:
        """Scores of several questions' prompts (prefix, suffixes) in one pass over the
        prefixes and one over every suffix.

        The prefixes are right-padded into one batch and encoded once; the key/value cache is
        then repeated once per suffix of its question (rotations or options) and every suffix
        of every question is read in one batch, its positions continuing its own prefix and
        the prefix's padding masked out. With ``reuse_prefix`` off each suffix is read after
        its whole prefix again (for checking and timing)."""
        import torch

        rows = [(i, suffix) for i, (_, suffixes) in enumerate(prompts) for suffix in suffixes]
        owners = torch.tensor([i for i, _ in rows], device=self.device)
        with torch.inference_mode():
            if self.reuse_prefix:
                prefix_ids, prefix_mask = self._padded([prefix for prefix, _ in prompts])
                cache = self.model(input_ids=prefix_ids, attention_mask=prefix_mask,
                                   use_cache=True).past_key_values
                cache.reorder_cache(owners)
                suffix_ids, suffix_mask = self._padded([suffix for _, suffix in rows])
                starts = prefix_mask.sum(dim=1)[owners]
                positions = starts[:, None] + torch.arange(suffix_ids.shape[1],
                                                           device=self.device)
                out = self.model(input_ids=suffix_ids, past_key_values=cache,
                                 attention_mask=torch.cat([prefix_mask[owners], suffix_mask], 1),
                                 position_ids=positions, use_cache=True)
                ends = suffix_mask.sum(dim=1) - 1
            else:
                ids, mask = self._padded([prompts[i][0] + suffix for i, suffix in rows])
                out = self.model(input_ids=ids, attention_mask=mask, use_cache=False)
                ends = mask.sum(dim=1) - 1
            last = out.logits[torch.arange(len(rows), device=self.device), ends]
        read = {k: self.answers.yes_no() if self.scoring == "option" else self.answers.letters(k)
                for k in set(options)}
        # The answer tokens' columns only, brought to the host in one transfer for the batch.
        wanted = sorted({token for tokens in read.values() for token in tokens})
        column = {token: j for j, token in enumerate(wanted)}
        picked = last[:, wanted].double().cpu().numpy()
        answers = [picked[r, [column[token] for token in read[options[i]]]]
                   for r, (i, _) in enumerate(rows)]
        scores, r = [], 0
        for i, (_, suffixes) in enumerate(prompts):
            mine, r = answers[r:r + len(suffixes)], r + len(suffixes)
            scores.append(self._combine(mine, options[i]))
        return scores

    def _combine(self, rows: list[np.ndarray], k: int) -> np.ndarray:
        """A question's score per option from its suffixes' answer-token logits."""
        if self.scoring == "option":
            yes, no = np.array(rows).T
            return log_odds_scores(yes, no)
        total = np.zeros(k)
        for shift, letters in enumerate(rows):
            unrotate(total, letters - np.logaddexp.reduce(letters), shift)
        return total / len(rows)

    def _padded(self, sequences: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids right-padded to the longest, and the attention mask."""
        import torch

        width = max(len(ids) for ids in sequences)
        pad_id = self.tokenizer.pad_token_id
        pad_id = pad_id if pad_id is not None else (self.tokenizer.eos_token_id or 0)
        ids = torch.tensor([[*ids, *[pad_id] * (width - len(ids))] for ids in sequences],
                           device=self.device)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in sequences],
                            device=self.device)
        return ids, mask

    def score_many(self, items: Sequence[tuple[Question, str]]) -> CausalLMScores:
        """Scores of ``(question, context)`` pairs, with the seconds spent per question."""
        start = time.perf_counter()
        rows, _ = self.score_batch(items)
        seconds = time.perf_counter() - start
        return CausalLMScores(pad(rows), seconds / max(len(items), 1))
