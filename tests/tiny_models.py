"""Tiny randomly initialised models, built in memory from configurations: test fixtures only.

They drive the real code paths that need a model of a family no bundled package carries (a
Llama-style causal LM with a SentencePiece-style tokenizer) in seconds and a few MB. No run of
the pipeline ever reads with one: their answers are noise.

The tokenizer is trained here on the text of the test corpus with Hugging Face ``tokenizers``
and set up as transformers converts Llama's and Mistral's SentencePiece models: spaces become
``▁`` and a dummy ``▁`` is prepended to the text, pieces split before each ``▁``; so ``" A"``
alone is two tokens (``▁`` and ``▁A``) while ``"Answer: A"`` ends in the one token ``▁A``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tests.conftest import FIXTURES

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


def sentencepiece_tokenizer(vocab_size: int = 1000):
    """A Llama-style (``▁``-prefixed BPE) fast tokenizer trained on :func:`corpus_text`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                               normalizers.Replace(" ", "▁")])
    backend.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"])
    backend.train_from_iterator(corpus_text(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="</s>")


def tiny_llama(folder: Path, seed: int = 0) -> Path:
    """Save a 2-layer, 64-wide Llama-style causal LM with :func:`sentencepiece_tokenizer` into
    ``folder`` (about 0.5 MB) and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = sentencepiece_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
