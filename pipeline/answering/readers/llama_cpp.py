"""The heavy reader on llama.cpp: a GGUF causal LM scores the answer letter, still quantised.

Why llama.cpp: the strongest reader these machines can run is Qwen2.5-Coder-1.5B-Instruct, whose
official weights are a Q4_K_M GGUF. transformers dequantises such a file to float32 (77 s to
load, 7.1 GB, 5.95 s a question on two cores); llama.cpp memory-maps it (4 s, 1.8 GB) and runs
the 4-bit kernels directly, 3.26 s a question for the same answers (``bench/heavy_scoring.py
--runtimes llama.cpp transformers``, docs/benchmarks.md). Dynamic int8 quantisation under
torch was faster still but ruined the answers.

The method is the answer-letter approach of :mod:`pipeline.answering.readers.causal_lm`: one
prompt in the model's own chat template (context, question, and the question's own ``k``
options labelled A onwards, two to ten of them), an assistant turn that begins ``Answer:``, and
one forward pass whose next-token logits of ``" A"`` .. (the ``k``-th letter) score the
options. The model still puts most of its mass on the space-prefixed letters after ``Answer:``,
so those are the tokens read. The log-softmax over the question's ``k`` letters is returned, so
scores are on one scale from question to question (the cascade's blend relies on that).

Consecutive prompts share their beginning (the system prompt and the context header), and with
``permutations`` > 1 every rotation of one question (``min(permutations, k)`` of its ``k``
cyclic rotations) shares the context and the question too:
the key/value cache of the longest common prefix with the previous prompt is kept and only the
rest is evaluated.

``logits_all`` stays off (it would allocate ``n_ctx`` x vocabulary floats); the last position's
logits are read with ``llama_get_logits_ith(ctx, -1)``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.answering.readers import pad
from pipeline.answering.readers.causal_lm import (
    ANSWER_CUE,
    DEFAULT_CONTEXT_TOKENS,
    OPTION_SYSTEM,
    SYSTEM,
    AnswerTokens,
    CausalLMScores,
    check_options,
    check_permutations,
    check_scoring,
    log_odds_scores,
    proposal_block,
    question_block,
    rotation,
    rotations,
    unrotate,
    user_message,
)
from pipeline.models import ResolvedModel
from pipeline.questions.question import MIN_OPTIONS, Question

# llama.cpp's settings of the reader: prompts of a few hundred tokens go in one batch.
LLAMA_OPTIONS: dict[str, Any] = {"n_batch": 512}


def available() -> bool:
    """Whether the llama.cpp binding is installed (``make`` builds it for this CPU)."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def default_threads() -> int:
    """The cores this process may use: llama.cpp's prompt processing scales with them."""
    return max(1, len(os.sched_getaffinity(0)))


def gguf_path(model: ResolvedModel | str | Path) -> Path:
    """The GGUF file of a resolved model, or a path given directly."""
    if isinstance(model, ResolvedModel):
        if not model.file:
            raise ValueError(f"{model.reference} is not a GGUF model ({model.path}); llama.cpp "
                             "reads GGUF files only: use the transformers runtime")
        return model.path / model.file
    return Path(model)


class LlamaCppReader:
    """Answer-letter scorer on a GGUF model through llama.cpp (see the module docstring)."""

    def __init__(self, model: ResolvedModel | str | Path, *,
                 context_tokens: int = DEFAULT_CONTEXT_TOKENS, permutations: int = 1,
                 threads: int | None = None, n_ctx: int = 2048,
                 scoring: str = "letter", options: Mapping[str, Any] | None = None) -> None:
        """``options``: further ``llama_cpp.Llama`` arguments (``n_batch``, ``n_ubatch``,
        ``flash_attn``, ``type_k``...), over :data:`LLAMA_OPTIONS`; ``bench/heavy_settings.py``
        measures them."""
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        check_permutations(permutations)
        check_scoring(scoring)
        self.scoring = scoring
        if context_tokens < 0:
            raise ValueError("context_tokens must be >= 0")
        path = gguf_path(model)
        self.context_tokens = context_tokens
        self.permutations = permutations
        self.threads = threads or default_threads()
        self.llm = Llama(str(path), n_ctx=n_ctx, n_threads=self.threads,
                         n_threads_batch=self.threads, logits_all=False, verbose=False,
                         **{**LLAMA_OPTIONS, **(options or {})})
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{path.name} has no chat template; the letter prompt needs an "
                             "instruct model")
        self.formatter = Jinja2ChatFormatter(template, eos_token=self._token_text(
            self.llm.token_eos()), bos_token=self._token_text(self.llm.token_bos()))
        self.bos_text = self._token_text(self.llm.token_bos())
        self.answers = AnswerTokens(self._tokenize)
        # Fail at once for a model without one-token answers.
        if scoring == "option":
            self.answers.yes_no()
        else:
            self.answers.letters(MIN_OPTIONS)
        self.tokens_evaluated = 0

    def _tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=False, special=False)

    def _token_text(self, token: int) -> str:
        return self.llm._model.token_get_text(token) if token >= 0 else ""

    def cut_context(self, context: str, tokens: int | None = None) -> str:
        """The context cut to its first ``tokens`` tokens (the best passages come first)."""
        budget = self.context_tokens if tokens is None else tokens
        ids = self.llm.tokenize(context.strip().encode(), add_bos=False, special=False)
        if len(ids) <= budget:
            return context.strip()
        return self.llm.detokenize(ids[:budget]).decode("utf-8", errors="ignore").strip()

    def prompt_text(self, question: Question, context: str,
                    options: Sequence[str] | None = None) -> str:
        """One prompt in the model's chat template, ending where the answer letter is due: the
        question's own options (or ``options``, a rotation of them), lettered A onwards."""
        shown = question.options if options is None else options
        check_options(shown)
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": user_message(question.prompt, shown, context)}]
        return self.formatter(messages=messages).prompt + ANSWER_CUE

    def proposal_text(self, question: Question, context: str, option: str) -> str:
        """The per-option prompt: the context and question (the prefix every option shares),
        one option proposed alone, ending where " yes" or " no" is due."""
        messages = [{"role": "system", "content": OPTION_SYSTEM},
                    {"role": "user", "content": question_block(question.prompt, context)
                     + proposal_block(option)}]
        return self.formatter(messages=messages).prompt + ANSWER_CUE

    def prompt_tokens(self, question: Question, context: str,
                      options: Sequence[str] | None = None, option: str | None = None
                      ) -> list[int]:
        """The token ids of one prompt: :meth:`prompt_text`, or with ``option`` the per-option
        :meth:`proposal_text`."""
        text = (self.prompt_text(question, context, options) if option is None
                else self.proposal_text(question, context, option))
        add_bos = self.llm._model.add_bos_token() and not (
            self.bos_text and text.startswith(self.bos_text))
        return self.llm.tokenize(text.encode(), add_bos=add_bos, special=True)

    def _next_logits(self, tokens: list[int], read: list[int]) -> np.ndarray:
        """Evaluate ``tokens``, reusing the cached common prefix; the next-token logits of the
        ``read`` token ids."""
        from llama_cpp import llama_get_logits_ith

        if len(tokens) >= self.llm.n_ctx():
            raise ValueError(f"a prompt of {len(tokens)} tokens exceeds the model's context "
                             f"window ({self.llm.n_ctx()})")
        cached = self.llm.input_ids[: self.llm.n_tokens]
        common = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(tokens) - 1)  # the last token must be evaluated for logits
        self.llm.n_tokens = common
        self.llm.eval(tokens[common:])
        self.tokens_evaluated += len(tokens) - common
        row = llama_get_logits_ith(self.llm.ctx, -1)
        return np.array([row[i] for i in read], dtype=np.float64)

    def _fitted(self, make: Callable[[str], list[int]], text: str) -> tuple[list[int], str]:
        """The tokens ``make`` gives for the context ``text``, the context cut shorter where
        very long options would overflow the context window rather than fail."""
        tokens = make(text)
        if len(tokens) >= self.llm.n_ctx():
            over = len(tokens) - self.llm.n_ctx() + 1
            text = self.cut_context(text, max(0, self.context_tokens - over))
            tokens = make(text)
        return tokens, text

    def score(self, question: Question, context: str) -> np.ndarray:
        """One score per option of the question, in order: the mean over rotations of the
        log-softmax of its letters, or in per-option scoring the log-softmax over options of
        each one's yes/no log-odds (the options share the cached context prefix)."""
        check_options(question.options)
        k = len(question.options)
        text = self.cut_context(context)
        self.last_tokens = 0
        if self.scoring == "option":
            yes_no = []
            for option in question.options:
                tokens, text = self._fitted(
                    lambda t, o=option: self.prompt_tokens(question, t, option=o), text)
                self.last_tokens += len(tokens)
                yes_no.append(self._next_logits(tokens, self.answers.yes_no()))
            yes, no = np.array(yes_no).T
            return log_odds_scores(yes, no)
        total = np.zeros(k)
        used = rotations(self.permutations, k)
        for shift in range(used):
            shown = rotation(question.options, shift)
            tokens, text = self._fitted(
                lambda t, s=shown: self.prompt_tokens(question, t, s), text)
            self.last_tokens += len(tokens)
            letters = self._next_logits(tokens, self.answers.letters(k))
            unrotate(total, letters - np.logaddexp.reduce(letters), shift)
        return total / used

    batch_size = 1  # one question at a time: llama.cpp's context holds one sequence here

    def score_batch(self, items: Sequence[tuple[Question, str]]
                    ) -> tuple[list[np.ndarray], list[int]]:
        """:meth:`score` of each pair, and each one's prompt tokens."""
        scores, tokens = [], []
        for question, context in items:
            scores.append(self.score(question, context))
            tokens.append(self.last_tokens)
        return scores, tokens

    def score_many(self, items: Sequence[tuple[Question, str]],
                   progress: Callable[[int, int], None] | None = None) -> CausalLMScores:
        """Scores of ``(question, context)`` pairs, with the seconds spent per question."""
        start = time.perf_counter()
        rows = []
        for done, (question, context) in enumerate(items, 1):
            rows.append(self.score(question, context))
            if progress:
                progress(done, len(items))
        seconds = time.perf_counter() - start
        return CausalLMScores(pad(rows), seconds / max(len(items), 1))
