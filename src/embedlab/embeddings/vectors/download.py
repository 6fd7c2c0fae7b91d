"""Fetch a known vector file into the cache: progress bar, verification, safe extraction.

Only called when the file is missing from the cache and ``pretrained.download`` is true.
Every failure (no network, HTTP error, bad checksum, corrupt archive) raises a
:class:`~embedlab.errors.DataError` that names the file and where to put it by hand.
Archives are extracted member by member; a member whose path would leave the cache folder
(absolute, ``..``, a link) is refused.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from embedlab.errors import DataError

log = logging.getLogger(__name__)

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


def _progress(total: int | None, desc: str):  # type: ignore[no-untyped-def]
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False)


def download(url: str, dest: Path, sha256: str | None = None, timeout: float = 30.0) -> Path:
    """Stream ``url`` into ``dest`` (via ``dest.part``), check length and ``sha256``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
            length = resp.headers.get("Content-Length")
            total = int(length) if length else None
            done = 0
            with _progress(total, dest.name) as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        raise DataError(f"download of {url} failed: {exc}", str(dest)) from exc
    if total is not None and done != total:
        part.unlink(missing_ok=True)
        raise DataError(f"download of {url} truncated: {done} of {total} bytes", str(dest))
    if sha256 and digest.hexdigest() != sha256.lower():
        part.unlink(missing_ok=True)
        raise DataError(f"sha256 of {url} is {digest.hexdigest()}, expected {sha256}", str(dest))
    os.replace(part, dest)
    return dest


def _inside(root: Path, member: str) -> Path:
    target = (root / member).resolve()
    if (
        member.startswith(("/", "\\"))
        or ".." in Path(member).parts
        or not target.is_relative_to(root.resolve())
    ):
        raise DataError(
            f"archive member {member!r} would be written outside {root}; refusing to extract"
        )
    return target


def extract(archive: Path, root: Path, members: list[str] | None = None) -> list[Path]:
    """Extract ``members`` (default: all) of a zip or a ``.gz`` into ``root``, safely."""
    out: list[Path] = []
    if archive.name.endswith(".gz"):
        target = _inside(root, archive.name[: -len(".gz")])
        try:
            with (
                gzip.open(archive, "rb") as src,
                open(target.with_name(target.name + ".part"), "wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, EOFError) as exc:
            raise DataError(f"corrupt gzip archive: {exc}", str(archive)) from exc
        os.replace(target.with_name(target.name + ".part"), target)
        return [target]
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise DataError(f"CRC error in member {bad!r}", str(archive))
            for info in zf.infolist():
                if info.is_dir() or (members is not None and info.filename not in members):
                    continue
                mode = info.external_attr >> 16
                if (mode & 0o170000) == 0o120000:  # a symlink member
                    raise DataError(
                        f"archive member {info.filename!r} is a link; refusing to extract",
                        str(archive),
                    )
                target = _inside(root, info.filename)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                out.append(target)
    except zipfile.BadZipFile as exc:
        raise DataError(f"not a valid zip archive: {exc}", str(archive)) from exc
    return out


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
    root = Path(cache_dir)
    target = root / filename
    if target.is_file():
        return target
    hint = f"put {filename} into {root.absolute()} (pretrained.cache_dir, or EMBEDLAB_VECTOR_CACHE)"
    if not urls:
        raise DataError(f"vector file not found and no download URL is known; {hint}", str(target))
    if not allow_download:
        raise DataError(
            f"vector file not found and pretrained.download=false; {hint} (from {urls[0]})",
            str(target),
        )
    errors = []
    for url in urls:
        archive_name = url.rsplit("/", 1)[-1].split("?", 1)[0]
        archive = root / archive_name
        try:
            if archive_name == filename:  # a plain file, no archive
                return download(url, target, sha256)
            if not archive.is_file():
                log.info("downloading %s -> %s", url, archive)
                download(url, archive, sha256)
            extract(archive, root, None if archive_name.endswith(".gz") else [filename])
            if not keep_archive:
                archive.unlink(missing_ok=True)
            if target.is_file():
                return target
            errors.append(f"{url}: archive has no member {filename!r}")
        except DataError as exc:
            errors.append(str(exc))
    raise DataError(f"could not fetch the vectors ({'; '.join(errors)}); {hint}", str(target))
