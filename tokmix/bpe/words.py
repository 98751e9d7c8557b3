"""Word tables (ARCHITECTURE.md §3): the multiset of pre-tokens of a corpus sample, with its totals.

A word table is the only thing later stages read, so it is a mergeable value: tables of
disjoint shards add up (``a + b``), and the result does not depend on the order of addition.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from tokmix.bpe import long_text
from tokmix.bpe.fast_pretokenize import Engine, WordCounter, word_counter
from tokmix.bpe.pretokenizers import Pretokenizer
from tokmix.bpe.word_arrays import WordArrays


class WordTable:
    """``word (UTF-8 bytes) -> count`` plus the sample's totals.

    :meth:`add_text` counts with the pre-tokenizer's :func:`word_counter` (the compiled path
    when there is one, unless ``engine`` says otherwise), which keeps words in its own table
    until :attr:`counts` is read: then they move into the ``Counter``, one Python ``bytes`` per
    distinct word. Both engines are exact, so the engine changes how fast, never what."""

    def __init__(
        self,
        counts: Counter[bytes] | None = None,
        documents: int = 0,
        bytes_: int = 0,
        chars: int = 0,
        pretokens: int = 0,
        invalid_utf8_documents: int = 0,
        files: int = 0,
    ) -> None:
        self._counts: Counter[bytes] = Counter() if counts is None else counts
        self.documents = documents
        self.bytes_ = bytes_
        self.chars = chars
        self.pretokens = pretokens
        self.invalid_utf8_documents = invalid_utf8_documents
        self.files = files
        self._counter: WordCounter | None = None
        self._counter_for: tuple[Pretokenizer, Engine] | None = None
        self._pending = False

    @property
    def counts(self) -> Counter[bytes]:
        """The word counts (words still in the counter's table are moved in first)."""
        self._flush()
        return self._counts

    @counts.setter
    def counts(self, value: Counter[bytes]) -> None:
        self._counter = self._counter_for = None
        self._pending = False
        self._counts = value

    def _flush(self) -> None:
        if self._pending:
            self._pending = False
            assert self._counter is not None
            pending = self._counter.drain()
            if self._counts:
                self._counts.update(pending)
            else:
                self._counts = pending

    def word_arrays(self) -> WordArrays:
        """The word counts as arrays, in the order of :attr:`counts`. While the words are
        still in the counter's table (nothing has read :attr:`counts`) they come from there
        without a Python object per word: the sharded count's map task reads them so."""
        if self._pending and not self._counts:
            assert self._counter is not None
            return self._counter.arrays()
        return WordArrays.from_counts(self.counts)

    def add_text(self, text: str, pretokenizer: Pretokenizer, engine: Engine = "auto") -> None:
        """Count one document's pre-tokens (``engine``: see :func:`word_counter`)."""
        counter_for = self._counter_for
        if (
            self._counter is None
            or counter_for is None
            or counter_for[0] is not pretokenizer
            or counter_for[1] != engine
        ):
            self._flush()  # words counted with another pre-tokenizer or engine
            self._counter = word_counter(pretokenizer, engine)
            self._counter_for = (pretokenizer, engine)
        for part in long_text.pieces(text, pretokenizer):  # a long document, in bounded memory
            self.pretokens += self._counter.add(part)
        self._pending = True
        self.documents += 1
        self.bytes_ += len(text.encode("utf-8", errors="surrogatepass"))
        self.chars += len(text)

    def _fields(self) -> tuple[object, ...]:
        return (
            self.counts,
            self.documents,
            self.bytes_,
            self.chars,
            self.pretokens,
            self.invalid_utf8_documents,
            self.files,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WordTable):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it replaces

    def __repr__(self) -> str:
        totals = ", ".join(f"{k}={v}" for k, v in self.totals().items())
        return f"WordTable({totals})"

    def __add__(self, other: WordTable) -> WordTable:
        counts = Counter(self.counts)
        counts.update(other.counts)
        return WordTable(
            counts,
            self.documents + other.documents,
            self.bytes_ + other.bytes_,
            self.chars + other.chars,
            self.pretokens + other.pretokens,
            self.invalid_utf8_documents + other.invalid_utf8_documents,
            self.files + other.files,
        )

    def __len__(self) -> int:
        return len(self.counts)

    @classmethod
    def total(cls, parts: Iterable[WordTable]) -> WordTable:
        """The sum of many tables in one pass (``a + b + ...`` copies the counts per term)."""
        out = cls()
        for t in parts:
            out.counts.update(t.counts)
            out.documents += t.documents
            out.bytes_ += t.bytes_
            out.chars += t.chars
            out.pretokens += t.pretokens
            out.invalid_utf8_documents += t.invalid_utf8_documents
            out.files += t.files
        return out

    def sorted_items(self) -> tuple[list[bytes], np.ndarray]:
        """Words in byte order with their counts: the canonical order every writer uses, so
        equal tables give equal files whatever order they were counted in."""
        counts = self.counts
        words = sorted(counts)
        return words, np.fromiter((counts[w] for w in words), dtype=np.int64, count=len(words))

    def totals(self) -> dict[str, int]:
        text = self.text_totals()
        return {
            "documents": text["documents"],
            "bytes": text["bytes"],
            "chars": text["chars"],
            "pretokens": text["pretokens"],
            "distinct_words": len(self.counts),
            "invalid_utf8_documents": text["invalid_utf8_documents"],
            "files": self.files,
        }

    def text_totals(self) -> dict[str, int]:
        """The totals of the text read, which add up over shards: :meth:`totals` less the
        distinct words and files. They do not read :attr:`counts`, which would move the words
        out of the counter's table one Python object at a time (see :meth:`word_arrays`)."""
        return {
            "documents": self.documents,
            "bytes": self.bytes_,
            "chars": self.chars,
            "pretokens": self.pretokens,
            "invalid_utf8_documents": self.invalid_utf8_documents,
        }

    @classmethod
    def from_arrays(cls, words: Iterable[bytes], counts: Iterable[int], **totals: int) -> WordTable:
        table = cls(Counter(), **totals)
        for w, c in zip(words, counts, strict=True):
            table.counts[w] += int(c)
        return table

    def to_arrow(self, category: str) -> pa.Table:
        from tokmix.schemas import WORD_COUNTS

        words, counts = self.sorted_items()
        return pa.table(
            {
                "category": pa.array([category] * len(words), pa.string()),
                "word": pa.array(words, pa.binary()),
                "count": pa.array(counts, pa.int64()),
            },
            schema=WORD_COUNTS,
        )


def count_words(
    texts: Iterable[str], pretokenizer: Pretokenizer, engine: Engine = "auto"
) -> WordTable:
    """The word table of some documents (the reference counter; jobs shard it)."""
    table = WordTable()
    for text in texts:
        table.add_text(text, pretokenizer, engine)
    return table


def document_group(text: bytes, groups: int) -> int:
    """The bootstrap group (``0 .. groups-1``) of a document, from a hash of its text alone.

    Intervals resample document groups (ARCHITECTURE.md §5). Hashing the text makes a document's
    group the same however the corpus is sharded, ordered or read (one process or Ray), so both
    pipelines split a sample into the same groups."""
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") % groups
