"""Every constant of the on-disk store format, in one place (see FORMAT.md)."""

from __future__ import annotations

FORMAT_NAME = "mmtok-store"
FORMAT_VERSION = 1

MANIFEST_FILE = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"
JOURNAL_FILE = "build-journal.json"
SHARDS_DIR = "shards"
TOKENS_SUFFIX = ".tokens.npy"
DOCS_SUFFIX = ".docs.npy"
TEMP_PREFIX = ".tmp-"
SHARD_NAME_DIGITS = 6

# Token ids are little-endian unsigned: uint16 when every id fits, else uint32.
TOKEN_DTYPES = ("<u2", "<u4")
# Document end offsets index the whole token stream, so they need 64 bits.
DOCS_DTYPE = "<i8"

# .npy headers are padded to this size so a shard's header can be rewritten in
# place once its final length is known (numpy pads to a multiple of 64 anyway).
NPY_HEADER_BYTES = 128

# Build defaults: a shard closes at the first chunk boundary after this many
# tokens (64 Mi tokens = 128 MiB as uint16), and inputs are read in ~1 MiB pieces.
DEFAULT_SHARD_TOKENS = 1 << 26
DEFAULT_CHUNK_BYTES = 1 << 20
