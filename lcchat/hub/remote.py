"""The Hugging Face Hub, through huggingface_hub: list a repository, read a GGUF header
from it, and download a file resumably into the shared cache, verified.

Everything on the wire is huggingface_hub's (its session, HF_ENDPOINT, HF_TOKEN, offline
mode, retries); lcchat writes no HTTP client. One thing huggingface_hub no longer does is
resume across runs: the releases lcchat uses (2.x, and late 1.x) make hf_hub_download write
each attempt to a temporary file of its own, deleted when interrupted (its
_download_to_tmp_and_move). So the transfer itself goes through huggingface_hub's
`http_get` (which sends the Range header for the bytes already there) into
`blobs/<etag>.incomplete`, under the lock file hf_hub_download would take; a second pull
appends to what the first left. Once the bytes are checked (sha256 against the Hub's LFS
metadata, then gguf_info's validation) the file becomes `blobs/<etag>`, and
hf_hub_download itself adds the snapshot link and ref, as for a file it fetched.

Errors become one line (LcchatError): no network, no such repository or file, a gated
repository, offline mode, a full disk, a failed check.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from lcchat.engine import gguf_info
from lcchat.engine.quant.variants import split_tag
from lcchat.errors import InputError, LcchatError
from lcchat.hub import cache
from lcchat.hub.source import HubSource, file_pattern_problem
from lcchat.textsafe import one_line

log = logging.getLogger("lcchat.hub")

MAX_FILES = 100_000  # files of one repository considered
# The cache names blobs by ETag and snapshots by commit: both come from the server, so they
# must be plain names before they become paths.
_ETAG = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,127}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
HEADER_FIRST_READ = 2 * 2**20  # most GGUF headers (vocabulary included) are smaller
MAX_HEADER_BYTES = 96 * 2**20  # a 256K vocabulary with merges is ~20 MB; past this, refuse
HASH_CHUNK = 4 * 2**20
# http_get asks its HTTP library for 10 MB pieces (constants.DOWNLOAD_CHUNK_SIZE), which
# httpx2 assembles by copying every socket read into a buffer. With no size, the reads are
# handed over as they arrive: measured on loopback, that copying was a fifth of the
# transfer's CPU time, and Ctrl+C now loses only the read in flight, not up to 10 MB.
TRANSFER_CHUNK = None


@dataclass(frozen=True)
class RemoteFile:
    filename: str
    size: int | None
    sha256: str | None  # from the Hub's LFS metadata; None for a file not stored in LFS

    @property
    def type_name(self) -> str | None:
        """The quantization named in the file name ("Q4_K_M"), if any."""
        stem = self.filename.rsplit("/", 1)[-1]
        return split_tag(stem[:-5] if stem.lower().endswith(".gguf") else stem)[1]


@dataclass(frozen=True)
class Listing:
    repo_id: str
    commit: str
    files: list[RemoteFile]

    def file(self, name: str) -> RemoteFile:
        for f in self.files:
            if f.filename == name:
                return f
        ggufs = ", ".join(f.filename for f in self.files if f.filename.lower().endswith(".gguf")) or "none"
        raise InputError(f"hf://{self.repo_id} has no file {one_line(repr(name))}; its GGUF files: "
                         f"{one_line(ggufs, 300)}")


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _bounded(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@contextlib.contextmanager
def hub_errors(what: str) -> Iterator[None]:
    """Turn what huggingface_hub and its HTTP library raise into one line for people."""
    import httpx2
    from huggingface_hub import errors as hf

    try:
        yield
    except hf.OfflineModeIsEnabled as exc:
        raise LcchatError(f"cannot {what}: offline mode is on (HF_HUB_OFFLINE); unset it to download") from exc
    except hf.GatedRepoError as exc:
        raise LcchatError(f"cannot {what}: the repository is gated; accept its terms on its Hub page, then "
                          "log in with `hf auth login` or set HF_TOKEN") from exc
    except hf.RepositoryNotFoundError as exc:
        raise InputError(f"cannot {what}: no such repository on {_endpoint()} (or it is private: log in with "
                         "`hf auth login` or set HF_TOKEN)") from exc
    except hf.RevisionNotFoundError as exc:
        raise InputError(f"cannot {what}: no such revision") from exc
    except hf.RemoteEntryNotFoundError as exc:
        raise InputError(f"cannot {what}: the file is not in the repository") from exc
    except hf.HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        raise LcchatError(f"cannot {what}: {_endpoint()} answered HTTP {status}; try again later") from exc
    except httpx2.TransportError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LcchatError(f"cannot {what}: {_endpoint()} cannot be reached ({_bounded(reason, 120)}); check the "
                          "network, or point HF_ENDPOINT at a mirror") from exc
    except hf.FileMetadataError as exc:
        raise LcchatError(f"cannot {what}: {_endpoint()} does not answer like the Hugging Face Hub; check "
                          "HF_ENDPOINT and any proxy") from exc


def list_repo(source: HubSource, revision: str = "main") -> Listing:
    """The repository's files with their sizes and LFS sha256 (one model_info call)."""
    from huggingface_hub import HfApi

    with hub_errors(f"list hf://{source.repo_id}"):
        info = HfApi().model_info(source.repo_id, revision=revision, files_metadata=True)
    files = []
    for s in (info.siblings or [])[:MAX_FILES]:
        if not isinstance(s.rfilename, str) or file_pattern_problem(s.rfilename):
            continue  # not a usable path inside a repository: nothing lcchat could download
        lfs = s.lfs
        sha = lfs.sha256 if lfs is not None else None
        size = lfs.size if lfs is not None else s.size
        files.append(RemoteFile(s.rfilename, size if isinstance(size, int) else None,
                                sha if isinstance(sha, str) else None))
    if not isinstance(info.sha, str) or not _COMMIT.fullmatch(info.sha):
        raise LcchatError(f"cannot list hf://{source.repo_id}: {_endpoint()} gave no commit id for it")
    return Listing(source.repo_id, info.sha, files)


class _NoBar:
    """Stands in for tqdm in http_get: lcchat draws its own progress (see _Sink)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: float | None = 1) -> None:
        pass


def _metadata(listing: Listing, filename: str):
    """HEAD of the file at the listed commit: etag, size and where to GET it."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(listing.repo_id, filename, revision=listing.commit)
    with hub_errors(f"reach {one_line(f'hf://{listing.repo_id}/{filename}')}"):
        meta = get_hf_file_metadata(url)
    if not meta.etag or not _ETAG.fullmatch(meta.etag):
        raise LcchatError(f"cannot download hf://{listing.repo_id}/{one_line(filename)}: the server gave no "
                          "usable ETag for it")
    return url, meta


def _get_headers(url: str, location: str) -> dict[str, str]:
    """huggingface_hub's headers (user agent, HF_TOKEN), without the token when the file
    is served from another host (a CDN), as hf_hub_download does."""
    from urllib.parse import urlparse

    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers()
    if urlparse(url).netloc != urlparse(location).netloc:
        headers.pop("authorization", None)
        headers.pop("Authorization", None)
    return headers


def fetch_header(listing: Listing, remote: RemoteFile) -> gguf_info.GGUFInfo:
    """The GGUF header of a remote file, from Range requests for its first bytes (a few
    MB: the metadata and tensor table, never the weights)."""
    from huggingface_hub.file_download import http_get

    url, meta = _metadata(listing, remote.filename)
    name = one_line(f"hf://{listing.repo_id}/{remote.filename}")
    size = meta.size or remote.size
    if not size:
        raise LcchatError(f"cannot size {name}: the server gave no length")
    headers = _get_headers(url, meta.location)
    data = b""
    want = min(HEADER_FIRST_READ, size)
    while True:
        buf = _Bounded(want - len(data))
        with hub_errors(f"read the header of {name}"), contextlib.suppress(_Bounded.Full):
            http_get(meta.location, buf, headers={**headers, "Range": f"bytes={len(data)}-{want - 1}"},
                     tqdm_class=_NoBar)
        chunk = buf.getvalue()
        if not chunk:
            raise LcchatError(f"cannot read the header of {name}: the server sent no bytes")
        data += chunk[: want - len(data)]
        try:
            return gguf_info.read_gguf_prefix(data, size, name)
        except gguf_info.HeaderIncomplete as more:
            if more.needed > MAX_HEADER_BYTES:
                raise LcchatError(f"{name}: its header claims to run past {MAX_HEADER_BYTES // 2**20} MB; "
                                  "choose a file with --quant TYPE") from None
            want = min(size, max(more.needed + 2**20, 2 * len(data)))


class _Bounded(io.BytesIO):
    """A buffer that stops the transfer once it holds `limit` bytes: a server that ignores
    the Range header must not stream gigabytes into memory."""

    class Full(Exception):
        pass

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def write(self, data) -> int:  # type: ignore[override]
        room = self.limit - self.tell()
        n = super().write(bytes(data[: max(room, 0)]))
        if len(data) >= room:
            raise self.Full
        return n


# ---------------------------------------------------------------- downloading


Progress = Callable[[int, int | None], None]  # (bytes so far, total)


class _Sink:
    """The file http_get writes into: appends to the partial file, hashes as it goes and
    reports progress. If the server ignores the Range header, http_get rewinds and
    truncates; the hash then restarts from what is left."""

    def __init__(self, f, hasher, done: int, total: int | None, progress: Progress):
        self.f, self.hasher, self.done, self.total, self.progress = f, hasher, done, total, progress
        self.received = 0  # bytes that came over the network in this run

    def write(self, data: bytes) -> int:
        n = self.f.write(data)
        self.hasher.update(data)
        self.done += len(data)
        self.received += len(data)
        self.progress(self.done, self.total)
        return n

    def seek(self, *args: int) -> int:
        return self.f.seek(*args)

    def tell(self) -> int:
        return self.f.tell()

    def truncate(self, *args: int) -> int:
        size = self.f.truncate(*args)
        self.f.flush()
        self.hasher = _hash_file(Path(self.f.name), size)
        self.done = size
        return size


def _hash_file(path: Path, limit: int | None = None, progress: Progress | None = None):
    hasher = hashlib.sha256()
    done = 0
    with open(path, "rb") as f:
        while limit is None or done < limit:
            chunk = f.read(HASH_CHUNK if limit is None else min(HASH_CHUNK, limit - done))
            if not chunk:
                break
            hasher.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, limit)
    return hasher


@dataclass
class Downloaded:
    path: Path  # the snapshot entry in the cache
    size: int
    resumed_from: int  # bytes that were already there from an earlier pull
    received: int  # bytes that came over the network
    seconds: float  # time spent receiving (the transfer alone: no listing, no checks)


def download(listing: Listing, remote: RemoteFile, *, progress: Progress, note: Callable[[str], None],
             retry_command: str) -> Downloaded:
    """Fetch one file into the cache (resuming a partial one), verify it, and return it.
    A file that fails a check is deleted, and the error says why."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import WeakFileLock

    name = one_line(f"hf://{listing.repo_id}/{remote.filename}")
    url, meta = _metadata(listing, remote.filename)
    etag = meta.etag
    expected = meta.size or remote.size
    from huggingface_hub import constants

    if expected and expected > constants.MAX_HTTP_DOWNLOAD_SIZE:
        raise LcchatError(f"{name} is {_mb(expected)}, larger than the Hub serves over plain HTTP; "
                          "choose a smaller file with --quant TYPE")
    partial = cache.partial_path(listing.repo_id, etag)
    blob = cache.blob_path(listing.repo_id, etag)
    lock = cache.lock_path(listing.repo_id, etag)
    for directory in (partial.parent, lock.parent):
        directory.mkdir(parents=True, exist_ok=True)
    seconds = 0.0
    resumed = received = 0
    with WeakFileLock(lock):
        if not blob.exists():
            resumed = partial.stat().st_size if partial.exists() else 0
            if expected is not None and resumed > expected:  # not ours, or the file changed: start over
                partial.unlink()
                resumed = 0
            if resumed:
                note(f"resuming: {_mb(resumed)} of {_mb(expected)} already downloaded; checking them")
            hasher = _hash_file(partial, resumed) if resumed else hashlib.sha256()
            _check_disk(partial.parent, (expected or 0) - resumed)
            with open(partial, "ab") as f:
                sink = _Sink(f, hasher, resumed, expected, progress)
                progress(resumed, expected)
                started = time.monotonic()
                with _disk_errors(partial.parent), hub_errors(f"download {name}"), _chunks(TRANSFER_CHUNK):
                    http_get(meta.location, sink, resume_size=resumed, headers=_get_headers(url, meta.location),
                             expected_size=expected, displayed_filename=remote.filename, tqdm_class=_NoBar)
                seconds = time.monotonic() - started
                received = sink.received
                digest = sink.hasher.hexdigest()
            _verify(partial, name, digest, remote, retry_command, note)
            os.replace(partial, blob)
    with hub_errors(f"record {name} in the cache"):
        path = Path(hf_hub_download(listing.repo_id, remote.filename, revision=listing.commit))
    _remember_ref(listing)
    return Downloaded(path, path.stat().st_size, resumed, received, seconds)


def _verify(path: Path, name: str, digest: str, remote: RemoteFile, retry_command: str,
            note: Callable[[str], None]) -> None:
    """sha256 against the Hub's LFS record, then the GGUF checks llama.cpp relies on."""
    if not remote.sha256:
        note(f"the Hub lists no sha256 for {name} (not an LFS file); checking its size and GGUF structure only")
    elif digest != remote.sha256.lower():
        path.unlink(missing_ok=True)
        raise LcchatError(f"{name}: the downloaded bytes have sha256 {digest[:16]}…, but the Hub lists "
                          f"{remote.sha256[:16]}…; the file was corrupted on the way and has been deleted; "
                          f"run `{retry_command}` to fetch it again")
    try:
        gguf_info.load_checked(path, vocab=False)
    except LcchatError as exc:
        path.unlink(missing_ok=True)
        reason = str(exc).removeprefix(f"{path}: ")
        raise LcchatError(f"{name} is not a usable GGUF file ({reason}); it has been deleted") from None


def _remember_ref(listing: Listing) -> None:
    """refs/main -> the commit pulled: hf_hub_download only writes a ref for a branch
    name, and we asked it for the commit."""
    ref = cache.repo_dir(listing.repo_id) / "refs" / "main"
    try:
        if not ref.exists() or ref.read_text().strip() != listing.commit:
            ref.parent.mkdir(parents=True, exist_ok=True)
            ref.write_text(listing.commit)
    except OSError:
        log.debug("could not write %s", ref, exc_info=True)


@contextlib.contextmanager
def _chunks(size: int | None) -> Iterator[None]:
    """http_get's read size (None: as the socket delivers), for one transfer."""
    from huggingface_hub import constants

    before = constants.DOWNLOAD_CHUNK_SIZE
    constants.DOWNLOAD_CHUNK_SIZE = size
    try:
        yield
    finally:
        constants.DOWNLOAD_CHUNK_SIZE = before


def _check_disk(directory: Path, needed: int) -> None:
    import shutil

    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return
    if needed > free:
        raise LcchatError(f"not enough disk space in {directory}: the download needs {_mb(needed)} more, "
                          f"{_mb(free)} is free; free some space or set HF_HUB_CACHE to another disk")


@contextlib.contextmanager
def _disk_errors(directory: Path) -> Iterator[None]:
    import errno

    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise LcchatError(f"the disk holding {directory} is full; free some space and run the pull again "
                              "to resume") from exc
        if exc.errno is not None:
            raise LcchatError(f"cannot write into {directory}: {exc.strerror}") from exc
        if "Consistency check failed" in str(exc):
            raise LcchatError("the server closed the transfer before the end of the file; run the pull again "
                              "to resume") from exc
        raise LcchatError(f"the download stopped: {_bounded(str(exc), 200)}; run the pull again to resume") from exc


def _mb(n: int | None) -> str:
    from lcchat.engine.monitor import human_bytes

    return human_bytes(n) if n is not None else "?"
