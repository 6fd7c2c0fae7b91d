"""Vector files: every format, bad rows, alignment, the aligned-matrix cache, downloads."""

from __future__ import annotations

import functools
import gzip
import http.server
import os
import struct
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from embedlab.embeddings.vectors import coverage, ensure_file, load_aligned, read_vectors
from embedlab.embeddings.vectors.align import align, wanted_keys
from embedlab.errors import DataError

WORDS = ["the", "cat", "Paris", "dog", "naïve", "</s>"]
RNG = np.random.default_rng(0)
VECS = RNG.standard_normal((len(WORDS), 5)).astype(np.float32)


def write_text(path: Path, header: bool, words=WORDS, vecs=VECS, trailing: str = "") -> Path:
    lines = [f"{len(words)} {vecs.shape[1]}"] if header else []
    lines += [
        w + " " + " ".join(f"{v:.9g}" for v in row) + trailing
        for w, row in zip(words, vecs, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_w2v_bin(path: Path, newline: bool) -> Path:
    with open(path, "wb") as f:
        f.write(f"{len(WORDS)} {VECS.shape[1]}\n".encode())
        for w, row in zip(WORDS, VECS, strict=True):
            f.write(
                w.encode() + b" " + struct.pack(f"<{len(row)}f", *row) + (b"\n" if newline else b"")
            )
    return path


def keys(*words):
    return {w.encode() for w in words}


@pytest.mark.parametrize(
    "kind", ["glove", "vec", "vec_trailing_space", "bin", "bin_newline", "npy", "pt"]
)
def test_every_format_reads_only_the_wanted_words(tmp_path, kind):
    vocab_path = None
    if kind == "glove":
        path = write_text(tmp_path / "v.txt", header=False)
    elif kind.startswith("vec"):
        path = write_text(
            tmp_path / "v.vec", header=True, trailing=" " if "trailing" in kind else ""
        )
    elif kind.startswith("bin"):
        path = write_w2v_bin(tmp_path / "v.bin", newline=kind == "bin_newline")
    else:
        vocab_path = tmp_path / "words.txt"
        vocab_path.write_text("\n".join(WORDS) + "\n", encoding="utf-8")
        path = tmp_path / f"m.{kind}"
        if kind == "npy":
            np.save(path, VECS)
        else:
            torch.save({"weight": torch.from_numpy(VECS)}, path)
    res = read_vectors(path, None, keys("cat", "naïve", "</s>", "absent"), vocab_path=vocab_path)
    assert set(res.vectors) == keys("cat", "naïve", "</s>")
    assert res.dim == 5 and res.num_words == len(WORDS)
    np.testing.assert_allclose(res.vectors["naïve".encode()], VECS[4], rtol=1e-6)
    np.testing.assert_allclose(res.vectors[b"</s>"], VECS[5], rtol=1e-6)


def test_pt_is_loaded_with_weights_only(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"weight": torch.zeros(2, 2), "evil": object()}, path)  # needs full unpickling
    (tmp_path / "w.txt").write_text("a\nb\n")
    with pytest.raises(Exception, match=r"(?i)weights_only|unpickl"):
        read_vectors(path, None, keys("a"), vocab_path=tmp_path / "w.txt")


def test_ragged_row_is_an_error_naming_file_and_line_or_a_counted_skip(tmp_path):
    path = write_text(tmp_path / "v.txt", header=False)
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(" ", 1)[0]  # "dog" loses a value
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"v\.txt:4: 4 values, expected 5"):
        read_vectors(path, "text", keys("dog", "cat"))
    res = read_vectors(path, "text", keys("dog", "cat"), on_bad_rows="skip")
    assert set(res.vectors) == keys("cat") and res.counts["bad_rows"] == 1
    # rows that are not wanted are never parsed, so they cannot fail
    assert set(read_vectors(path, "text", keys("cat")).vectors) == keys("cat")


def test_nan_row_is_an_error_or_counted(tmp_path):
    vecs = VECS.copy()
    vecs[1, 2] = np.nan
    path = write_text(tmp_path / "v.vec", header=True, vecs=vecs)
    with pytest.raises(DataError, match=r"v\.vec:3: NaN or inf in the vector of 'cat'"):
        read_vectors(path, None, keys("cat"))
    res = read_vectors(path, None, keys("cat", "the"), on_bad_rows="skip")
    assert set(res.vectors) == keys("the") and res.counts["bad_rows"] == 1


def test_duplicated_word_keeps_first_and_is_counted(tmp_path, caplog):
    words = [*WORDS, "cat"]
    vecs = np.vstack([VECS, np.ones((1, 5), np.float32)])
    path = write_text(tmp_path / "v.txt", header=False, words=words, vecs=vecs)
    res = read_vectors(path, "text", keys("cat"))
    assert res.counts["duplicates"] == 1
    np.testing.assert_allclose(res.vectors[b"cat"], VECS[1], rtol=1e-6)
    obj = load_aligned(path, ["cat"], fmt="text")
    assert obj["stats"]["duplicates"] == 1
    assert "1 duplicated word" in caplog.text


def test_exact_then_lowercased_lookup_and_extension(tmp_path):
    path = write_text(tmp_path / "v.txt", header=False)
    vocab = ["<pad>", "The", "paris", "Paris", "CAT", "zebra"]
    res = read_vectors(path, "text", wanted_keys(vocab, True), top_k=4)
    vectors, found, out_vocab, counts = align(res, vocab, lowercase_fallback=True, extend_with=4)
    assert found.tolist()[:6] == [False, True, False, True, True, False]
    assert torch.allclose(vectors[1], torch.from_numpy(VECS[0]))  # The -> the
    assert torch.allclose(vectors[3], torch.from_numpy(VECS[2]))  # Paris exact
    assert counts == {"found_exact": 2 + 2, "found_lower": 2}  # + the extension rows below
    # extension: the file's top 4 rows (the cat Paris dog) minus the known ones
    assert out_vocab[6:] == ["the", "cat", "dog"]
    assert found[6:].all()
    _, found_exact_only, _, _ = align(res, vocab, lowercase_fallback=False)
    assert found_exact_only.tolist() == [False, False, False, True, False, False]


def test_cache_hit_is_identical_and_invalidated_by_file_vocab_and_options(tmp_path):
    path = write_text(tmp_path / "v.txt", header=False)
    cache = tmp_path / "cache"
    first = load_aligned(path, ["cat", "dog"], fmt="text", cache_dir=cache)
    second = load_aligned(path, ["cat", "dog"], fmt="text", cache_dir=cache)
    assert not first["stats"]["cached"] and second["stats"]["cached"]
    assert torch.equal(first["vectors"], second["vectors"]) and second["vocab"] == ["cat", "dog"]
    assert not load_aligned(path, ["dog", "cat"], fmt="text", cache_dir=cache)["stats"]["cached"]
    assert not load_aligned(
        path, ["cat", "dog"], fmt="text", lowercase_fallback=False, cache_dir=cache
    )["stats"]["cached"]
    ext = load_aligned(path, ["cat", "dog"], fmt="text", extend_with=2, cache_dir=cache)
    again = load_aligned(path, ["cat", "dog"], fmt="text", extend_with=2, cache_dir=cache)
    assert again["stats"]["cached"] and again["vocab"] == ext["vocab"] == ["cat", "dog", "the"]
    write_text(path, header=False, vecs=VECS + 1)  # same name, new content
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = load_aligned(path, ["cat", "dog"], fmt="text", cache_dir=cache)
    assert not changed["stats"]["cached"]
    assert torch.allclose(changed["vectors"][0], torch.from_numpy(VECS[1] + 1))


def test_coverage_of_types_and_tokens():
    found = torch.tensor([False, False, True, True, False])  # <pad>, <unk>, a, b, c
    counts = torch.tensor([0, 5, 10, 3, 2])
    cov = coverage(found, counts, special_ids=[0, 1], unk_id=1)
    assert cov["types"] == 3 and cov["types_found"] == 2
    assert cov["coverage_types"] == pytest.approx(200 / 3)
    assert cov["coverage_tokens"] == pytest.approx(100 * 13 / 20)  # <unk> tokens count as uncovered


# --------------------------------------------------------------------------- downloads


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on localhost serving ``tmp_path / "www"``."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_zip_over_http_extracts_the_member_into_the_cache(tmp_path, http_root):
    root, base = http_root
    src = write_text(tmp_path / "glove.6B.50d.txt", header=False)
    with zipfile.ZipFile(root / "glove.6B.zip", "w") as zf:
        zf.write(src, "glove.6B.50d.txt")
        zf.writestr("glove.6B.100d.txt", "other 1 2\n")
    cache = tmp_path / "vc"
    path = ensure_file(
        "glove.6B.50d.txt",
        cache,
        [f"{base}/missing.zip", f"{base}/glove.6B.zip"],
        True,
        keep_archive=True,
    )
    assert path == cache / "glove.6B.50d.txt" and path.read_bytes() == src.read_bytes()
    assert not (cache / "glove.6B.100d.txt").exists()  # only the asked-for member
    assert not list(cache.glob("*.part"))


def test_download_gz_via_file_url_and_sha256_check(tmp_path):
    src = write_text(tmp_path / "src.vec", header=True)
    gz = tmp_path / "cc.xx.300.vec.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    cache = tmp_path / "vc"
    with pytest.raises(DataError, match="sha256"):
        ensure_file("cc.xx.300.vec", cache, [gz.as_uri()], True, sha256="0" * 64)
    import hashlib

    good = hashlib.sha256(gz.read_bytes()).hexdigest()
    path = ensure_file("cc.xx.300.vec", cache, [gz.as_uri()], True, sha256=good)
    assert path.read_bytes() == src.read_bytes()


def test_offline_fails_fast_naming_file_and_folder(tmp_path):
    cache = tmp_path / "vc"
    with pytest.raises(DataError, match=r"put glove\.6B\.50d\.txt into .*vc"):
        ensure_file(
            "glove.6B.50d.txt",
            cache,
            ["https://example.invalid/glove.6B.zip"],
            allow_download=False,
        )
    with pytest.raises(DataError, match=r"could not fetch.*put glove\.6B\.50d\.txt into"):
        ensure_file(
            "glove.6B.50d.txt", cache, ["http://127.0.0.1:9/glove.6B.zip"], allow_download=True
        )


@pytest.mark.parametrize("member", ["../escape.txt", "/abs/escape.txt", "a/../../escape.txt"])
def test_zip_extraction_stays_in_the_cache(tmp_path, member):
    archive = tmp_path / "glove.6B.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(member, "x")
        zf.writestr("glove.6B.50d.txt", "the 1 2\n")
    cache = tmp_path / "cache"
    path = ensure_file("glove.6B.50d.txt", cache, [archive.as_uri()], True)
    assert path.read_text() == "the 1 2\n"
    assert sorted(p.name for p in cache.iterdir()) == ["glove.6B.50d.txt"]  # archive removed
    assert not (tmp_path / "escape.txt").exists()
    with pytest.raises(DataError, match=r"\(file://\S+/glove\.6B\.zip: archive has no member"):
        ensure_file("glove.6B.99d.txt", cache, [archive.as_uri()], True)
    assert sorted(p.name for p in cache.iterdir()) == ["glove.6B.50d.txt"]  # no .part left


def test_corrupt_zip_is_reported_with_its_url(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"bad\.zip is not a valid zip archive.*put v\.txt into"):
        ensure_file("v.txt", tmp_path / "cache", [bad.as_uri()], True)


def test_rows_of_words_with_spaces_are_skipped_not_mistaken(tmp_path):
    # GloVe 840B has rows like ". . . v1 .. vd": split at the first space they look like "."
    path = tmp_path / "v.txt"
    path.write_text("the 1 2 3\n. . . 9 9 9\n. 4 5 6\n", encoding="utf-8")
    res = read_vectors(path, "text", keys(".", "the"))
    assert res.vectors[b"."].tolist() == [4.0, 5.0, 6.0]
    assert res.counts["multiword_rows"] == 1 and res.counts["duplicates"] == 0
    assert "words containing spaces" in res.warnings()[0]
