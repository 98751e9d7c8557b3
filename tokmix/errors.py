"""Error types. Every message says what was found and what to do about it."""


class TokmixError(Exception):
    """Base class of every error tokmix raises on purpose."""


class TokenizerFormatError(TokmixError):
    """A tokenizer file is unreadable, not BPE, or internally inconsistent."""


class CorpusReadError(TokmixError):
    """A corpus path is missing, empty, unreadable or malformed."""


class DatasetError(TokmixError):
    """A Parquet dataset is missing, uncommitted, corrupt or of the wrong schema."""


class SolverError(TokmixError):
    """The mixture LP could not be built or solved."""


class OutputRootError(TokmixError):
    """An output root is not tokmix's, is a file, or is being written by another run."""
