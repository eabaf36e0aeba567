"""Tiny randomly initialised models, built in memory from configurations: test fixtures only.

They drive the real code paths that need a model of a family no bundled package carries (a
Llama- or Qwen2-style causal LM with a SentencePiece-style tokenizer, a DeBERTa-v2 multiple-choice
model) in seconds and a few MB, in the suite on the CPU and in ``bench/gpu_smoke.py`` on a GPU
(so this module needs only torch, transformers and tokenizers: no pytest). No run of the
pipeline ever reads with one: their answers are noise.

The tokenizer is trained here on the text of the test corpus with Hugging Face ``tokenizers``
and set up as transformers converts Llama's and Mistral's SentencePiece models: spaces become
``▁`` and a dummy ``▁`` is prepended to the text, pieces split before each ``▁``; so ``" A"``
alone is two tokens (``▁`` and ``▁A``) while ``"Answer: A"`` ends in the one token ``▁A``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"

LETTER_LINES = [f"Answer: {word}" for word in (*"ABCDEFGHIJ", "yes", "no")] * 20


def corpus_text(limit: int = 200) -> list[str]:
    """Lines of real text from the tiny dump, and the answer cue with every letter."""
    lines = []
    with gzip.open(FIXTURES / "tiny-00000.json.gz", "rt") as handle:
        for raw in handle:
            record = json.loads(raw)
            if "text" in record:
                lines.append(record["text"])
            if len(lines) >= limit:
                break
    return [*lines, *LETTER_LINES]


def _sentencepiece_backend(vocab_size: int, special: list[str]):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE(unk_token=special[0]))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                               normalizers.Replace(" ", "▁")])
    backend.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special)
    backend.train_from_iterator(corpus_text(), trainer)
    return backend


def sentencepiece_tokenizer(vocab_size: int = 1000):
    """A Llama-style (``▁``-prefixed BPE) fast tokenizer trained on :func:`corpus_text`."""
    from transformers import PreTrainedTokenizerFast

    backend = _sentencepiece_backend(vocab_size, ["<unk>", "<s>", "</s>"])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="</s>")


def byte_level_tokenizer(vocab_size: int = 1000):
    """A Qwen2/GPT-2-style (byte-level BPE, ``Ġ`` for a space) fast tokenizer trained on
    :func:`corpus_text`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(corpus_text(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")


def deberta_tokenizer(vocab_size: int = 1000):
    """A DeBERTa-v3-style tokenizer (``▁``-prefixed pieces, ``[CLS] a [SEP] b [SEP]`` with
    segment ids) trained on :func:`corpus_text`."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    special = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"]
    backend = _sentencepiece_backend(vocab_size, special)
    cls, sep = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]",
                                   pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                   mask_token="[MASK]",
                                   model_input_names=["input_ids", "token_type_ids",
                                                      "attention_mask"])


def tiny_deberta(folder: Path, seed: int = 0) -> Path:
    """Save a 2-layer, 64-wide DeBERTa-v2 encoder (no multiple-choice head: the reader adds
    it, as it does to a real encoder checkpoint) with :func:`deberta_tokenizer` into ``folder``
    and return it."""
    import torch
    from transformers import DebertaV2Config, DebertaV2Model

    tokenizer = deberta_tokenizer()
    config = DebertaV2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=4,
                             max_position_embeddings=512, type_vocab_size=2,
                             relative_attention=True, position_buckets=64,
                             pos_att_type=["p2c", "c2p"], pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    DebertaV2Model(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_llama(folder: Path, seed: int = 0, family: str = "llama") -> Path:
    """Save a 2-layer, 64-wide causal LM of ``family`` (``llama`` with
    :func:`sentencepiece_tokenizer`, or ``qwen2`` with :func:`byte_level_tokenizer`, as the real
    families have them) into ``folder`` (about 0.5 MB) and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    config_class, model_class = {"llama": (LlamaConfig, LlamaForCausalLM),
                                 "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[family]
    tokenizer = sentencepiece_tokenizer() if family == "llama" else byte_level_tokenizer()
    config = config_class(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    model_class(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def fact_questions() -> list:
    """The 32 hand-written fact questions (``fixtures/reader/facts.csv``) with the context that
    states each answer, cut in turn to 3, 4, 5 and 2 options (the answer always kept), as
    ``(Question, context)`` pairs: a small ragged batch for the tiny models' code paths."""
    import csv

    from pipeline.questions.question import LETTERS, Question

    with open(FIXTURES / "reader" / "facts.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    items = []
    for i, row in enumerate(rows):
        k = (3, 4, 5, 2)[i % 4]
        wrong = [x for x in LETTERS[:5] if x != row["answer"]][: k - 1]
        kept = sorted([row["answer"], *wrong])
        items.append((Question(row["id"], row["prompt"], tuple(row[x] for x in kept),
                               LETTERS[kept.index(row["answer"])], "facts", i), row["context"]))
    return items
