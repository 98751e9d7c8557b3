"""Tokenizer loaders (ARCHITECTURE.md §2) against the real released files in
../shared/data/tokenizers.

The oracles are independent of the loader: the files' own encoders (``tokenizers`` reading the
file, ``tiktoken`` on the ranks, ``sentencepiece`` on the ``.model``) must give the same ids on
real corpus text as a plain Hugging Face BPE built from the merges the loader returns.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from tokmix.bpe.loaders import load_tokenizer
from tokmix.bpe.pretokenizers import (
    CL100K,
    CL100K_PATTERN,
    O200K,
    SENTENCEPIECE,
    SENTENCEPIECE_DIGITS,
    named,
)
from tokmix.bpe.tokenizer import LoadedTokenizer
from tokmix.errors import TokenizerFormatError

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CATEGORIES = (
    "languages/en", "languages/ja", "languages/zh", "languages/ru", "languages/el",
    "languages/ko", "languages/km", "languages/vi", "code/python", "code/c", "code/rust",
    "domains/web",
)  # fmt: skip


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def loaded(tokenizers_dir: Path) -> Callable[[str], LoadedTokenizer]:
    """Load each shared tokenizer once per module (cl100k takes about a second)."""
    cache: dict[str, LoadedTokenizer] = {}

    def get(rel: str) -> LoadedTokenizer:
        if rel not in cache:
            cache[rel] = load_tokenizer(tokenizers_dir / rel)
        return cache[rel]

    return get


@pytest.fixture(scope="module")
def texts(corpora_dir: Path) -> list[str]:
    """A few hundred real lines (each with its newline) and some multi-line blocks, from
    natural languages of several scripts, code and web text."""
    out: list[str] = []
    for category in SAMPLE_CATEGORIES:
        docs = list(_first_docs(corpora_dir / category / "docs.jsonl.gz", 3))
        lines = [ln for doc in docs for ln in doc.splitlines(keepends=True) if ln.strip()]
        out += lines[:30]
        out += [doc[:1500] for doc in docs[:2]]
    return out


def _first_docs(path: Path, n: int) -> Iterator[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for _, line in zip(range(n), fh, strict=False):
            yield json.loads(line)["text"]


def _gpt2_byte_chars() -> dict[int, str]:
    """GPT-2's bytes_to_unicode, written out here so the oracle does not use the loader's."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    shifted = [b for b in range(256) if b not in keep]
    table = {b: chr(b) for b in keep}
    table.update({b: chr(256 + i) for i, b in enumerate(shifted)})
    return table


BYTE_CHARS = _gpt2_byte_chars()


def _u(token: bytes) -> str:
    return "".join(BYTE_CHARS[b] for b in token)


def _hf_bpe(tok: LoadedTokenizer, like: Tokenizer) -> Tokenizer:
    """A plain HF byte-level BPE from the loaded merges, pre-tokenized as ``like``."""
    vocab = {_u(t): i for t, i in tok.vocab.items()}
    merges = [(_u(a), _u(b)) for a, b in tok.merge_list.merges]
    out = Tokenizer(models.BPE(vocab, merges))
    out.pre_tokenizer = like.pre_tokenizer
    return out


def _mismatches(ours: Tokenizer, reference: Callable[[str], list[int]], texts: list[str]) -> int:
    return sum(ours.encode(t, add_special_tokens=False).ids != reference(t) for t in texts)


# ------------------------------------------------------------------ every file loads


# (path under tokenizers/, format, merges, encoding merges, pre-tokenizer family, sha256 prefix).
# The gpt-3.5 tokenizer.json's pipeline (Split + ByteLevel(use_regex=false)) has no family name.
SHARED = [
    ("gpt2", "gpt2-vocab-merges", 50_000, None, "gpt2", None),
    ("gpt2/merges.txt", "gpt2-vocab-merges", 50_000, None, "gpt2", None),
    ("gpt2/r50k_base.tiktoken", "tiktoken", 50_000, None, "gpt2", "306cd27f03c1a714"),
    ("gpt-3.5", "hf-json", 100_000, None, None, "1542d2ebccd8b9f7"),
    ("gpt-3.5/cl100k_base.tiktoken", "tiktoken", 100_000, None, "cl100k", "223921b76ee99bde"),
    ("mistral-7b-v0.1", "sentencepiece", 28_446, 58_980, "sentencepiece-digits", "dadfd56d7667"),
    ("sp-bpe-small", "sentencepiece", 3_635, 5_805, "sentencepiece-digits", "d497e6825c5cf935"),
    ("hf-bpe-small", "hf-json", 1_744, None, "gpt2", "36c24cfd7288db55"),
]  # fmt: skip


@pytest.mark.parametrize(("rel", "fmt", "n_merges", "n_encoding", "pretok", "sha"), SHARED)
def test_shared_tokenizer_loads(
    loaded: Callable[[str], LoadedTokenizer],
    rel: str,
    fmt: str,
    n_merges: int,
    n_encoding: int | None,
    pretok: str | None,
    sha: str | None,
) -> None:
    """Every released file loads with the merge counts and hashes its SOURCE.md states."""
    tok = loaded(rel)
    assert tok.format == fmt
    assert tok.n_merges == n_merges
    assert tok.merge_list.unreachable == ()
    assert (None if tok.encoding_merges is None else len(tok.encoding_merges)) == n_encoding
    if pretok is not None:
        assert tok.pretokenizer.name == pretok
    if fmt in ("tiktoken", "gpt2-vocab-merges", "sentencepiece"):
        assert tok.pretokenizer == named(str(pretok)), "the family constant itself"
    if sha is not None:
        assert tok.sha256.startswith(sha)
    assert tok.name == Path(rel).parts[0] or tok.name == Path(rel).stem
    products = {a + b for a, b in tok.merge_list.merges}
    assert products <= set(tok.vocab), "every product is a vocabulary token"


def test_demo_tokenizer_in_repo_loads() -> None:
    tok = load_tokenizer(REPO / "data" / "tokenizers" / "demo")
    assert (tok.name, tok.format, tok.n_merges) == ("demo", "hf-json", 1500)
    assert tok.pretokenizer.name == "gpt2" and tok.merge_list.alphabet == "bytes"


def test_directory_priority_is_noted(loaded: Callable[[str], LoadedTokenizer]) -> None:
    """gpt2/ holds vocab.json + merges.txt and a .tiktoken: the pair wins, and a note says so."""
    tok = loaded("gpt2")
    assert tok.path.endswith("merges.txt")
    assert any("*.tiktoken" in note for note in tok.notes)
    assert b"<|endoftext|>" not in tok.vocab and len(tok.vocab) == 50_256


# ------------------------------------------------------------------ same tokenizer twice


def test_gpt2_merges_txt_equals_r50k_recovered(loaded: Callable[[str], LoadedTokenizer]) -> None:
    pair, ranks = loaded("gpt2"), loaded("gpt2/r50k_base.tiktoken")
    assert pair.merge_list.merges == ranks.merge_list.merges
    assert pair.vocab == ranks.vocab
    assert pair.sha256 != ranks.sha256


def test_cl100k_json_equals_tiktoken(loaded: Callable[[str], LoadedTokenizer]) -> None:
    hf, tk = loaded("gpt-3.5"), loaded("gpt-3.5/cl100k_base.tiktoken")
    assert hf.merge_list == tk.merge_list
    assert hf.vocab == tk.vocab  # ids == ranks; the 5 special tokens are not in vocab
    assert hf.encoding_merges is None and tk.encoding_merges is None


# ------------------------------------------------------------------ encoder oracles


@pytest.mark.parametrize("rel", ["hf-bpe-small", "gpt-3.5"])
def test_byte_level_merges_encode_like_the_json(
    loaded: Callable[[str], LoadedTokenizer], tokenizers_dir: Path, texts: list[str], rel: str
) -> None:
    reference = Tokenizer.from_file(str(tokenizers_dir / rel / "tokenizer.json"))
    ours = _hf_bpe(loaded(rel), reference)
    ref = lambda t: reference.encode(t, add_special_tokens=False).ids  # noqa: E731
    assert _mismatches(ours, ref, texts) == 0


def test_gpt2_pair_encodes_like_tokenizers_from_files(
    loaded: Callable[[str], LoadedTokenizer], tokenizers_dir: Path, texts: list[str]
) -> None:
    folder = tokenizers_dir / "gpt2"
    reference = Tokenizer(
        models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt"))
    )
    reference.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    ours = _hf_bpe(loaded("gpt2/r50k_base.tiktoken"), reference)
    ref = lambda t: reference.encode(t, add_special_tokens=False).ids  # noqa: E731
    assert _mismatches(ours, ref, texts) == 0


def test_cl100k_recovered_merges_encode_like_tiktoken(
    loaded: Callable[[str], LoadedTokenizer], tokenizers_dir: Path, texts: list[str]
) -> None:
    tiktoken = pytest.importorskip("tiktoken")
    lines = (tokenizers_dir / "gpt-3.5" / "cl100k_base.tiktoken").read_bytes().splitlines()
    ranks = {base64.b64decode(tok): int(rank) for tok, rank in (ln.split() for ln in lines)}
    enc = tiktoken.Encoding(
        "cl100k-test",
        pat_str=CL100K_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={},
    )
    hf_pre = Tokenizer.from_file(str(tokenizers_dir / "gpt-3.5" / "tokenizer.json"))
    ours = _hf_bpe(loaded("gpt-3.5/cl100k_base.tiktoken"), hf_pre)
    assert _mismatches(ours, enc.encode_ordinary, texts) == 0


@pytest.mark.parametrize("rel", ["sp-bpe-small", "mistral-7b-v0.1"])
def test_sentencepiece_encoding_merges_reproduce_sentencepiece(
    loaded: Callable[[str], LoadedTokenizer], tokenizers_dir: Path, texts: list[str], rel: str
) -> None:
    """The HF-style list reproduces sentencepiece; the one-per-piece replay list does not."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenizers_dir / rel / "tokenizer.model"))
    tok = loaded(rel)
    assert tok.encoding_merges is not None

    def hf(merges: tuple[tuple[bytes, bytes], ...]) -> Tokenizer:
        vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
        pairs = [(a.decode(), b.decode()) for a, b in merges]
        out = Tokenizer(models.BPE(vocab, pairs, unk_token="<unk>", byte_fallback=True))
        out.normalizer = normalizers.Sequence(
            [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
        )
        return out

    assert _mismatches(hf(tok.encoding_merges), sp.encode, texts) == 0
    assert _mismatches(hf(tok.merge_list.merges), sp.encode, texts) > 0
    assert all(sp.piece_to_id(t.decode()) == i for t, i in tok.vocab.items())


# ------------------------------------------------------------------ rejections


@pytest.mark.parametrize(
    ("rel", "model_type"),
    [("not-bpe", "WordPiece"), ("not-bpe/tokenizer.json", "WordPiece"),
     ("not-bpe/unigram.model", "Unigram")],
)  # fmt: skip
def test_non_bpe_rejected_naming_the_model(tokenizers_dir: Path, rel: str, model_type: str) -> None:
    with pytest.raises(TokenizerFormatError, match=model_type):
        load_tokenizer(tokenizers_dir / rel)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("tokenizer.json", b"", "empty"),
        ("x.tiktoken", b"", "empty"),
        ("x.model", b"", "empty"),
        ("tokenizer.json", b"{not json", "not valid JSON"),
        ("tokenizer.json", b'{"version": "1.0"}', "no 'model' object"),
        ("tokenizer.json", b'{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [1]}}',
         "merge 1"),
        ("vocab.json", b'{"a": 0, "b": 1}', "plain vocabulary"),
        ("r50k.tiktoken", b"IQ== 0\nnot base64!! x\n", "line 2"),
        ("r50k.tiktoken", b"IQ== 0\nIQ== 1\n", "appears twice"),
        ("x.model", b"\x00\xff garbage garbage", "not a SentencePiece model"),
        ("mystery.bin", b"hello world, just text\n", "not a tokenizer file"),
        ("merges.txt", b"#version: 0.2\na b\n", "vocab.json"),
    ],
)  # fmt: skip
def test_bad_files_raise_naming_the_path(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(TokenizerFormatError, match=expected) as err:
        load_tokenizer(path)
    assert str(tmp_path) in str(err.value)


def test_missing_and_empty_directories(tmp_path: Path) -> None:
    with pytest.raises(TokenizerFormatError, match="no such file"):
        load_tokenizer(tmp_path / "nowhere")
    (tmp_path / "README.md").write_text("nothing here")
    with pytest.raises(TokenizerFormatError, match=r"no tokenizer file found.*README\.md"):
        load_tokenizer(tmp_path)


def _write_ranks(path: Path, tokens: list[bytes]) -> None:
    """A tiktoken file: the 256 bytes, then ``tokens``, ranked in that order."""
    every = [bytes([b]) for b in range(256)] + tokens
    path.write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % r for r, t in enumerate(every)))


def test_tiktoken_needs_a_known_name_or_a_pretokenizer(tmp_path: Path) -> None:
    _write_ranks(tmp_path / "mystery.tiktoken", [b"ab", b"abc"])
    with pytest.raises(TokenizerFormatError, match="pretokenizer="):
        load_tokenizer(tmp_path)
    tok = load_tokenizer(tmp_path, pretokenizer="o200k")
    assert tok.pretokenizer == O200K
    assert tok.merge_list.merges == ((b"a", b"b"), (b"ab", b"c"))
    with pytest.raises(TokenizerFormatError, match="does not fit"):
        load_tokenizer(tmp_path, pretokenizer="sentencepiece")
    (tmp_path / "other.tiktoken").write_bytes((tmp_path / "mystery.tiktoken").read_bytes())
    with pytest.raises(TokenizerFormatError, match="several"):
        load_tokenizer(tmp_path, pretokenizer="o200k")


def test_pretokenizer_override(
    loaded: Callable[[str], LoadedTokenizer], tokenizers_dir: Path
) -> None:
    tok = load_tokenizer(tokenizers_dir / "gpt2" / "r50k_base.tiktoken", pretokenizer="cl100k")
    assert tok.pretokenizer == CL100K
    assert tok.merge_list == loaded("gpt2/r50k_base.tiktoken").merge_list


def test_rank_recovery_reports_what_bpe_cannot_rebuild(tmp_path: Path) -> None:
    """``abcd``: greedy BPE merges ``bc`` first and is stuck at three parts, yet ``ab`` + ``cd``
    forms it (taken, reported). ``xyz``: no two earlier tokens form it (unreachable)."""
    _write_ranks(tmp_path / "cl100k_toy.tiktoken", [b"bc", b"ab", b"cd", b"abcd", b"xyz", b"xyzw"])
    tok = load_tokenizer(tmp_path / "cl100k_toy.tiktoken")
    assert tok.merge_list.merges == ((b"b", b"c"), (b"a", b"b"), (b"c", b"d"), (b"ab", b"cd"))
    assert tok.merge_list.unreachable == (b"xyz", b"xyzw")
    assert any("do not BPE-encode into two parts" in n for n in tok.notes)
    assert any("2 vocabulary tokens are unreachable" in n for n in tok.notes)


# ------------------------------------------------------------------ redundant lists


def test_redundant_byte_level_list_recovers_training_order(
    loaded: Callable[[str], LoadedTokenizer], tokenizers_dir: Path, tmp_path: Path
) -> None:
    """Appending every other split of each token (as Llama 3 files list them) is detected, and
    the order recovered from the vocabulary ids is exactly the trainer's."""
    doc = json.loads((tokenizers_dir / "hf-bpe-small" / "tokenizer.json").read_text("utf-8"))
    vocab, merges = doc["model"]["vocab"], [tuple(m) for m in doc["model"]["merges"]]
    known = set(merges)
    extra = [
        [t[:i], t[i:]]
        for t in vocab
        for i in range(1, len(t))
        if t[:i] in vocab and t[i:] in vocab and (t[:i], t[i:]) not in known
    ]
    assert len(extra) > 500
    doc["model"]["merges"] = [list(m) for m in merges] + extra
    (tmp_path / "tokenizer.json").write_text(json.dumps(doc), "utf-8")
    tok = load_tokenizer(tmp_path)
    original = loaded("hf-bpe-small")
    assert tok.merge_list == original.merge_list
    assert tok.encoding_merges is not None and len(tok.encoding_merges) == len(merges) + len(extra)
    assert any("redundant merge list" in n for n in tok.notes)


def test_unmade_vocab_token_is_unreachable_not_dropped(
    tokenizers_dir: Path, tmp_path: Path
) -> None:
    doc = json.loads((tokenizers_dir / "hf-bpe-small" / "tokenizer.json").read_text("utf-8"))
    doc["model"]["vocab"]["ĠzzqX"] = len(doc["model"]["vocab"])
    (tmp_path / "tokenizer.json").write_text(json.dumps(doc), "utf-8")
    tok = load_tokenizer(tmp_path)
    assert tok.merge_list.unreachable == (b" zzqX",)
    assert tok.vocab[b" zzqX"] == 2000
    assert any("unreachable" in n for n in tok.notes)


def test_sentencepiece_style_json_matches_the_model(
    loaded: Callable[[str], LoadedTokenizer], tokenizers_dir: Path, tmp_path: Path
) -> None:
    """A transformers-style conversion of sp-bpe-small (every split, byte fallback,
    Prepend/Replace normalizers or a Metaspace pre-tokenizer) loads to the same lists."""
    import sentencepiece as spm

    model = loaded("sp-bpe-small")
    assert model.encoding_merges is not None
    sp = spm.SentencePieceProcessor(
        model_file=str(tokenizers_dir / "sp-bpe-small" / "tokenizer.model")
    )
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    pairs = [(a.decode(), b.decode()) for a, b in model.encoding_merges]
    for variant in ("normalizers", "metaspace"):
        hf = Tokenizer(models.BPE(vocab, pairs, unk_token="<unk>", byte_fallback=True))
        hf.add_special_tokens(["<unk>", "<s>", "</s>"])
        digits = pre_tokenizers.Digits(individual_digits=True)
        if variant == "normalizers":
            hf.normalizer = normalizers.Sequence(
                [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
            )
            hf.pre_tokenizer = digits
        else:
            hf.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(), digits])
        hf.save(str(tmp_path / f"{variant}.json"))
        tok = load_tokenizer(tmp_path / f"{variant}.json")
        assert tok.merge_list == model.merge_list, variant
        assert tok.encoding_merges == model.encoding_merges
        assert tok.vocab == model.vocab
        assert tok.pretokenizer == SENTENCEPIECE_DIGITS
        assert any("redundant merge list" in n for n in tok.notes)


# ------------------------------------------------------------------ trained here


def _train(texts: list[str], *, byte_level: bool) -> Tokenizer:
    if byte_level:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        trainer = trainers.BpeTrainer(
            vocab_size=700,
            initial_alphabet=alphabet,
            special_tokens=["<|endoftext|>"],
            show_progress=False,
        )
    else:
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>"], show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


@pytest.mark.parametrize("byte_level", [True, False])
def test_string_and_list_merges_give_identical_lists(
    texts: list[str], tmp_path: Path, byte_level: bool
) -> None:
    """A tokenizer trained here, saved with ``[["a","b"]]`` merges and rewritten with ``"a b"``
    strings, loads to the same merge list: the trainer's own, in its order."""
    latin = [t for t in texts if t.isascii()]  # a small alphabet leaves room for merges
    _train(latin, byte_level=byte_level).save(str(tmp_path / "lists.json"))
    doc = json.loads((tmp_path / "lists.json").read_text("utf-8"))
    trained = [tuple(m) for m in doc["model"]["merges"]]
    assert trained and all(isinstance(m, list) for m in doc["model"]["merges"])
    doc["model"]["merges"] = [" ".join(m) for m in trained]
    (tmp_path / "strings.json").write_text(json.dumps(doc), "utf-8")
    lists, strings = (
        load_tokenizer(tmp_path / "lists.json"),
        load_tokenizer(tmp_path / "strings.json"),
    )
    assert lists.merge_list == strings.merge_list
    assert lists.vocab == strings.vocab and lists.pretokenizer == strings.pretokenizer
    assert len(lists.merge_list) == len(trained) and lists.encoding_merges is None
    special = b"<|endoftext|>" if byte_level else b"<unk>"
    assert special not in lists.vocab
    if byte_level:
        assert lists.merge_list.alphabet == "bytes" and lists.pretokenizer.name == "gpt2"
        assert [(_u(a), _u(b)) for a, b in lists.merge_list.merges] == trained
    else:
        assert lists.merge_list.alphabet == "chars" and lists.pretokenizer == SENTENCEPIECE
        assert [(a.decode(), b.decode()) for a, b in lists.merge_list.merges] == trained
