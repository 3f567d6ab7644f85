"""Downloaded models: where they are in the Hugging Face Hub's shared cache.

lcchat keeps no cache of its own: a pulled file lives where huggingface_hub puts it
($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub), so other tools that use
the Hub (llama.cpp's -hf, transformers, vLLM) find it and lcchat finds theirs. The layout
is the one huggingface_hub documents ("Understand caching"):

    models--OWNER--REPO/blobs/<etag>                 the file's bytes (etag: its sha256)
    models--OWNER--REPO/snapshots/<commit>/<file>    a symlink to the blob
    models--OWNER--REPO/refs/main                    the commit `main` pointed at

Finding a profile's model reads only these directories: no network, no lock, so
`-p NAME` works offline. A download in progress is `blobs/<etag>.incomplete` (see
remote.py), under the same lock file huggingface_hub takes for that blob.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lcchat.hub.source import matching, rank_of


def cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def repo_dir(repo_id: str) -> Path:
    return cache_dir() / ("models--" + repo_id.replace("/", "--"))


def partial_path(repo_id: str, etag: str) -> Path:
    return repo_dir(repo_id) / "blobs" / f"{etag}.incomplete"


def blob_path(repo_id: str, etag: str) -> Path:
    return repo_dir(repo_id) / "blobs" / etag


def lock_path(repo_id: str, etag: str) -> Path:
    """The lock huggingface_hub's hf_hub_download holds while it writes this blob."""
    return cache_dir() / ".locks" / ("models--" + repo_id.replace("/", "--")) / f"{etag}.lock"


@dataclass(frozen=True)
class LocalFile:
    repo_id: str
    filename: str  # path inside the repository
    commit: str
    path: Path  # the snapshot entry (a symlink to the blob)
    size: int
    mtime: float  # when the blob was written: the latest pull wins

    @property
    def address(self) -> str:
        return f"hf://{self.repo_id}/{self.filename}"


def local_files(repo_id: str) -> list[LocalFile]:
    """Every complete .gguf file of `repo_id` in the cache, in any snapshot."""
    snapshots = repo_dir(repo_id) / "snapshots"
    found: list[LocalFile] = []
    try:
        commits = sorted(p for p in snapshots.iterdir() if p.is_dir())
    except OSError:
        return []
    for commit_dir in commits:
        for root, _dirs, files in os.walk(commit_dir):
            for name in files:
                if not name.lower().endswith(".gguf"):
                    continue
                entry = Path(root) / name
                try:
                    st = entry.stat()  # follows the symlink: a dangling one is skipped
                except OSError:
                    continue
                relative = entry.relative_to(commit_dir).as_posix()
                found.append(LocalFile(repo_id, relative, commit_dir.name, entry, st.st_size, st.st_mtime))
    return found


def cached_repos() -> list[str]:
    """OWNER/REPO of every model repository in the cache."""
    try:
        names = sorted(p.name for p in cache_dir().iterdir() if p.name.startswith("models--"))
    except OSError:
        return []
    return [name[len("models--"):].replace("--", "/", 1) for name in names]


def find_local(repo_id: str, patterns: list[str]) -> LocalFile | None:
    """The downloaded file a profile uses: among those its `file` patterns allow, the one
    the earliest pattern matches, and of those the most recently pulled (so `lcchat pull
    NAME --quant Q8_0` switches the profile to Q8_0)."""
    files = local_files(repo_id)
    allowed = set(matching([f.filename for f in files], patterns))
    candidates = [f for f in files if f.filename in allowed]
    if not candidates:
        return None
    return min(candidates, key=lambda f: (rank_of(f.filename, patterns) if patterns else 0, -f.mtime))
