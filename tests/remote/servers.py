"""Servers the remote backend's tests talk to.

`LlamaServer` runs llama-cpp-python's own OpenAI-compatible server (python -m
llama_cpp.server, its `server` extra) on a free port, waiting until /v1/models answers.
`logits_all False` makes its decoding the same as lcchat's (with llama-cpp-python's default,
logits for every prompt token, the prompt batch is computed differently and a greedy reply
can drift from the in-process one after a few dozen tokens).

`Stub` is a stdlib http.server in a thread, for the faults a real server will not produce
on demand: a refused key, malformed event data, a stall, an error mid-stream, a line
without end. Its replies are chosen per test by setting `reply`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

READY_S = 120  # bounded wait for the server to load the model and answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    def __init__(self, model: Path, *, n_ctx: int = 4096, threads: int = 1, log: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.log = open(log, "wb") if log else subprocess.DEVNULL  # closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
             "--port", str(self.port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
             "--n_threads_batch", str(threads), "--logits_all", "False",
             "--verbose", "False"],
            stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})  # its log is read while it runs (said())
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with status {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer within {READY_S} s")

    def said(self, text: str, within: float = 30.0) -> bool:
        """Whether the server's output shows `text`, waiting for it up to `within` seconds."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.log_path is not None and text in self.log_path.read_text(errors="replace"):
                return True
            time.sleep(0.1)
        return False

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.log is not subprocess.DEVNULL:
            self.log.close()


def sse(chunk: dict | str) -> bytes:
    data = chunk if isinstance(chunk, str) else json.dumps(chunk)
    return f"data: {data}\n\n".encode()


def delta(text: str, finish: str | None = None) -> bytes:
    return sse({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]})


class Stub:
    """A fake OpenAI-compatible server. `reply` is a callable(handler) that writes the
    response to a chat request; `api_key` (when set) is the only Bearer token accepted."""

    def __init__(self) -> None:
        self.reply = lambda handler: handler.stream([delta("Hello"), delta(" there", "stop"), sse("[DONE]")])
        self.api_key: str | None = None
        self.requests: list[dict] = []
        self.release = threading.Event()  # a stalled reply waits on this
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def authorized(self) -> bool:
                if stub.api_key and self.headers.get("Authorization") != f"Bearer {stub.api_key}":
                    self.send_json(401, {"error": {"message": "Invalid API key", "type": "invalid_request_error"}})
                    return False
                return True

            def send_json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def stream(self, parts: list[bytes], *, close: bool = False, end: bool = True) -> None:
                """Send an event stream (chunked); close=True drops the connection after
                `parts` without ending the body, as a server that died would; end=False
                leaves the body open (a stall)."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for part in parts:
                    self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    self.wfile.flush()
                if close:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if end:
                    self.wfile.write(b"0\r\n\r\n")

            def do_GET(self) -> None:
                if not self.authorized():
                    return
                if self.path == "/v1/models":
                    self.send_json(200, {"object": "list", "data": [{"id": "stub-model", "object": "model"}]})
                else:
                    self.send_json(404, {"error": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.authorized():
                    return
                if self.path.endswith("/completions"):
                    stub.requests.append(body)
                    stub.reply(self)
                else:
                    self.send_json(404, {"error": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # a client that hung up is expected
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
