"""Train byte-level BPE tokenizers of known mixture with the ``tokenizers`` BpeTrainer.

The controlled experiment (ARCHITECTURE.md §8) needs tokenizers whose training text we know exactly;
the Hugging Face trainer is the reference implementation of BPE training, so the merge lists
are the ones a real release would carry.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.tokenizer import LoadedTokenizer


def train_bytelevel_bpe(
    texts: Iterable[str], n_merges: int, path: Path, *, split_digits: bool = False
) -> LoadedTokenizer:
    """Train a GPT-2-style byte-level BPE (GPT-2 regex; with ``split_digits`` every digit is
    its own pre-token first, as the paper's experiments do), save ``tokenizer.json`` under
    ``path`` and load it back as tokmix reads released tokenizers."""
    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if split_digits:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=256 + n_merges,
        min_frequency=0,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / "tokenizer.json"))
    return load_tokenizer(path / "tokenizer.json")
