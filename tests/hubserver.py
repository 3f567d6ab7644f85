"""A local stand-in for the Hugging Face Hub, for tests and benchmarks: no real Hub, ever.

It answers what huggingface_hub 2.x asks (read from its source: hf_api.model_info,
file_download.get_hf_file_metadata / http_get / hf_hub_download):

  GET  /api/models/OWNER/REPO[/revision/REV][?blobs=True]
       -> {"id", "sha", "siblings": [{"rfilename", "size", "blobId", "lfs": {"size", "sha256",
          "pointerSize"}}]}; 404 with X-Error-Code: RepoNotFound / RevisionNotFound.
  HEAD /OWNER/REPO/resolve/REV/FILE
       -> 302 to the "CDN" with X-Repo-Commit, X-Linked-Etag (the sha256), X-Linked-Size,
          ETag (the git blob id) and Location, as the Hub answers for an LFS file;
          404 with X-Error-Code: EntryNotFound for a missing file.
  GET  /OWNER/REPO/resolve/REV/FILE  -> the same redirect.
  GET  /lfs/SHA256 on the CDN -> the bytes, honouring `Range: bytes=N-[M]` (206 with
       Content-Range).

The "CDN" is a second listener on 127.0.0.2, another origin as a real CDN is (so
huggingface_hub stops at the redirect and drops the token, as it does on the Hub); both
are loopback addresses. Knobs for the tests: `advertise` lists a different sha256 than
the bytes have; `stall_at` makes the CDN stop after that many bytes of a file and wait
until `release()`; `rate` paces the CDN like a link of that many bytes/s; `log` records
every request with its Range header and the bytes sent.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import socketserver
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHUNK = 64 * 1024


@dataclass
class Logged:
    host: str  # "hub" or "cdn"
    method: str
    path: str
    range: str | None
    authorization: str | None = None  # the Authorization header, as received
    sent: int = 0  # body bytes written
    status: int = 0


@dataclass
class Repo:
    files: dict[str, bytes]
    commit: str = COMMIT
    advertise: dict[str, str] = field(default_factory=dict)  # filename -> sha256 to list instead of the real one
    etags: dict[str, str] = field(default_factory=dict)  # filename -> X-Linked-Etag to send instead of the sha256

    def __post_init__(self) -> None:
        self._sha = {name: hashlib.sha256(data).hexdigest() for name, data in self.files.items()}
        self._blob_id = {name: _git_blob_id(data) for name, data in self.files.items()}

    def sha256(self, name: str) -> str:
        return self.advertise.get(name) or self._sha[name]

    def blob_id(self, name: str) -> str:
        return self._blob_id[name]


class HubServer:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.log: list[Logged] = []
        self.stall_at: dict[str, int] = {}  # sha256 -> byte offset where the CDN stops sending
        self.rate: float | None = None  # bytes/s the CDN sends at most (a link's speed), None: as fast as it can
        self.stalled = threading.Event()  # set when a transfer reached its stall point
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._servers: list[socketserver.ThreadingTCPServer] = []
        self.hub_url = self.cdn_url = ""

    # -- control

    def add(self, repo_id: str, files: dict[str, bytes], **kwargs) -> Repo:
        repo = Repo(dict(files), **kwargs)
        self.repos[repo_id] = repo
        return repo

    def release(self) -> None:
        self._release.set()

    def requests(self, host: str | None = None, method: str | None = None) -> list[Logged]:
        with self._lock:
            return [r for r in self.log if (host is None or r.host == host) and (method is None or r.method == method)]

    def blob(self, sha: str) -> bytes | None:
        for repo in self.repos.values():
            for name, data in repo.files.items():
                if repo.sha256(name) == sha:
                    return data
        return None

    # -- lifecycle

    def __enter__(self) -> HubServer:
        hub = self._listen("127.0.0.1", "hub")
        cdn = self._listen("127.0.0.2", "cdn")
        self.hub_url = f"http://127.0.0.1:{hub.server_address[1]}"
        self.cdn_url = f"http://127.0.0.2:{cdn.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def _listen(self, address: str, host: str) -> socketserver.ThreadingTCPServer:
        owner = self

        class Handler(_Handler):
            hub = owner
            which = host

        server = socketserver.ThreadingTCPServer((address, 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._servers.append(server)
        return server


_API = re.compile(r"^/api/models/([^/]+/[^/]+?)(?:/revision/([^/]+))?/?$")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_LFS = re.compile(r"^/lfs/([0-9a-f]{64})$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _Handler(http.server.BaseHTTPRequestHandler):
    hub: HubServer
    which: str
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._route(body=False)

    def do_GET(self) -> None:
        self._route(body=True)

    def _route(self, body: bool) -> None:
        entry = Logged(self.which, self.command, self.path, self.headers.get("Range"), self.headers.get("Authorization"))
        with self.hub._lock:
            self.hub.log.append(entry)
        path = unquote(urlparse(self.path).path)
        try:
            if self.which == "cdn":
                m = _LFS.match(path)
                if m:
                    return self._lfs(m.group(1), body, entry)
            else:
                m = _API.match(path)
                if m:
                    return self._api(m.group(1), m.group(2) or "main", entry)
                m = _RESOLVE.match(path)
                if m:
                    return self._resolve(m.group(1), m.group(2), m.group(3), entry)
            self._error(404, None, entry)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _error(self, status: int, code: str | None, entry: Logged) -> None:
        entry.status = status
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _repo(self, repo_id: str, revision: str, entry: Logged) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", entry)
            return None
        if revision not in ("main", repo.commit):
            self._error(404, "RevisionNotFound", entry)
            return None
        return repo

    def _api(self, repo_id: str, revision: str, entry: Logged) -> None:
        repo = self._repo(repo_id, revision, entry)
        if repo is None:
            return
        siblings = []
        for name, data in sorted(repo.files.items()):
            siblings.append({"rfilename": name, "size": len(data), "blobId": repo.blob_id(name),
                             "lfs": {"size": len(data), "sha256": repo.sha256(name), "pointerSize": 134}})
        payload = json.dumps({"id": repo_id, "modelId": repo_id, "sha": repo.commit, "private": False,
                              "tags": ["gguf"], "siblings": siblings}).encode()
        entry.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        entry.sent = len(payload)

    def _resolve(self, repo_id: str, revision: str, filename: str, entry: Logged) -> None:
        repo = self._repo(repo_id, revision, entry)
        if repo is None:
            return
        if filename not in repo.files:
            entry.status = 404
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = repo.files[filename]
        sha = repo.sha256(filename)
        entry.status = 302
        self.send_response(302)
        self.send_header("Location", f"{self.hub.cdn_url}/lfs/{sha}")
        self.send_header("X-Repo-Commit", repo.commit)
        self.send_header("X-Linked-Etag", f'"{repo.etags.get(filename, sha)}"')
        self.send_header("X-Linked-Size", str(len(data)))
        self.send_header("ETag", f'"{repo.blob_id(filename)}"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _lfs(self, sha: str, body: bool, entry: Logged) -> None:
        data = self.hub.blob(sha)
        if data is None:
            return self._error(404, None, entry)
        start, end = 0, len(data) - 1
        status = 200
        wanted = self.headers.get("Range")
        if wanted:
            m = _RANGE.match(wanted.strip())
            if not m or int(m.group(1)) >= len(data):
                entry.status = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = int(m.group(1))
            end = min(int(m.group(2)), end) if m.group(2) else end
            status = 206
        entry.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{sha}"')
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if not body:
            return
        stall = self.hub.stall_at.get(sha)
        pos = start
        began = time.monotonic()
        while pos <= end:
            if stall is not None and pos >= stall:
                self.wfile.flush()
                self.hub.stalled.set()
                self.hub._release.wait(timeout=60)
                self.close_connection = True
                return
            stop = min(end + 1, pos + CHUNK, stall if stall is not None and stall > pos else end + 1)
            self.wfile.write(data[pos:stop])
            entry.sent += stop - pos
            pos = stop
            if self.hub.rate:
                time.sleep(max(0.0, began + entry.sent / self.hub.rate - time.monotonic()))


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
