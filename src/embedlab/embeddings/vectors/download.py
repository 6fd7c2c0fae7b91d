"""Fetch a known vector file into the cache with :func:`pooch.retrieve` (progress bar, sha256
check, zip member / gzip extraction).

Only called when the file is missing from the cache and ``pretrained.download`` is true.
Every failure (no network, HTTP error, bad checksum, corrupt archive, missing member) raises a
:class:`~embedlab.errors.DataError` that names the URL and where to put the file by hand. Only
the asked-for zip member is extracted (``zipfile`` also strips ``..`` and absolute paths).
"""

from __future__ import annotations

import shutil
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from embedlab.errors import DataError

_GLOVE_ZIPS = {
    "6B": "glove.6B.zip",
    "42B": "glove.42B.300d.zip",
    "840B": "glove.840B.300d.zip",
    "twitter.27B": "glove.twitter.27B.zip",
}
GLOVE_DIMS = {
    "6B": (50, 100, 200, 300),
    "42B": (300,),
    "840B": (300,),
    "twitter.27B": (25, 50, 100, 200),
}
_GLOVE_MIRRORS = (
    "https://nlp.stanford.edu/data/{zip}",
    "https://huggingface.co/stanfordnlp/glove/resolve/main/{zip}",
)
_FASTTEXT = "https://dl.fbaipublicfiles.com/fasttext"


def glove_urls(name: str) -> list[str]:
    """Official download URLs of GloVe ``name`` (a zip holding every dim of that corpus)."""
    zip_name = _GLOVE_ZIPS.get(name)
    return [m.format(zip=zip_name) for m in _GLOVE_MIRRORS] if zip_name else []


def fasttext_urls(name: str) -> list[str]:
    """URLs for fastText vectors: ``cc.<lang>.300``, ``wiki.<lang>``, ``wiki-news-300d-1M[-subword]``, ``crawl-300d-2M[-subword]``."""
    if name.startswith("cc."):
        return [f"{_FASTTEXT}/vectors-crawl/{name}.vec.gz"]
    if name.startswith("wiki."):
        return [f"{_FASTTEXT}/vectors-wiki/{name}.vec"]
    if name.startswith(("wiki-news-", "crawl-")):
        return [f"{_FASTTEXT}/vectors-english/{name}.vec.zip"]
    return []


def _copy_local(url: str, output_file: str, pooch: Any, check_only: bool = False) -> bool | None:
    """A pooch downloader for ``file://`` URLs, which pooch does not handle (tests, local mirrors)."""
    src = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if check_only:
        return src.is_file()
    shutil.copyfile(src, output_file)
    return None


def _archive_name(url: str) -> str:
    return url.rsplit("/", 1)[-1].split("?", 1)[0]


def fetch(url: str, root: Path, filename: str, sha256: str | None = None) -> Path:
    """``root/filename`` from ``url``: the file itself, a ``.gz`` of it, or a zip holding it.

    The download (``root/<last part of the url>``) is checked against ``sha256`` when given and
    left there (:func:`ensure_file` keeps a GloVe zip: its other dims need no new download).
    """
    import pooch

    archive = _archive_name(url)
    # pooch extracts in place; under a .part name, an interrupted run leaves no half file behind
    part = root / f"{filename}.part"
    if archive == filename:
        processor = None
    elif archive.endswith(".gz"):
        processor = pooch.Decompress(name=part.name)
    else:
        processor = pooch.Unzip(members=[filename], extract_dir=part.name)
    downloader = _copy_local if url.startswith("file:") else None
    try:
        pooch.retrieve(url, sha256, archive, root, processor, downloader, progressbar=True)
    except ValueError as exc:  # pooch: hash mismatch, unknown protocol
        what = "sha256 mismatch" if "hash" in str(exc) else "failed"
        raise DataError(f"download of {url}: {what}: {' '.join(str(exc).split())}") from exc
    except zipfile.BadZipFile as exc:
        raise DataError(f"{url} is not a valid zip archive ({exc})") from exc
    except (OSError, EOFError) as exc:  # requests' errors are OSErrors; EOFError: truncated gzip
        raise DataError(f"download of {url} failed: {exc}") from exc
    if part.is_file():
        part.replace(root / filename)
    elif part.is_dir():
        found = (part / filename).is_file()
        if found:
            (part / filename).replace(root / filename)
        shutil.rmtree(part)
        if not found:
            raise DataError(f"{url}: archive has no member {filename!r}")
    return root / filename


def ensure_file(
    filename: str,
    cache_dir: str | Path,
    urls: list[str],
    allow_download: bool,
    sha256: str | None = None,
    keep_archive: bool = False,
) -> Path:
    """``cache_dir/filename``, downloading and extracting it from ``urls`` when missing.

    Raises a DataError saying which file to put where when it is missing and cannot be
    fetched (``download: false``, no known URL, or every URL failed).
    """
    root = Path(cache_dir).absolute()
    target = root / filename
    if target.is_file():
        return target
    hint = f"put {filename} into {root} (pretrained.cache_dir, or EMBEDLAB_VECTOR_CACHE)"
    if not urls:
        raise DataError(f"vector file not found and no download URL is known; {hint}", str(target))
    if not allow_download:
        raise DataError(
            f"vector file not found and pretrained.download=false; {hint} (from {urls[0]})",
            str(target),
        )
    errors = []
    for url in urls:
        archive = root / _archive_name(url)
        try:
            return fetch(url, root, filename, sha256)
        except DataError as exc:
            errors.append(str(exc))
        finally:
            if archive != target and not keep_archive:
                archive.unlink(missing_ok=True)
    raise DataError(f"could not fetch the vectors ({'; '.join(errors)}); {hint}", str(target))
