"""An OpenAI-compatible inference server as the session's model: llama-server (alone or
pooling machines with --rpc), vLLM, Ollama, llama-cpp-python's own server.

The server is not token-level, so it is not driven by the token loop: RemoteModel stands
where engine.model.Model does for what the session asks of a model (context size, token
counts, stop texts, describe, close), and RemoteReplies stands where the TokenLoop does
(run a reply, cancel it, hold the context figure). A reply streams over HTTP (httpx) from
`/v1/chat/completions` (the server applies its template) or `/v1/completions` (lcchat
renders the prompt with the profile's template: the profile is the source of truth when it
has one); [backend] api chooses, `chat_api()` says the default. The reply text passes the
same StopFilter and reasoning Splitter as a local reply and becomes the same events (Token,
Thinking, Notice, Stats, Done, Error), so the front-ends, the commands and the store see no
difference. A server that splits the thinking off itself (llama-server's --reasoning-format
deepseek, vLLM's reasoning parsers, Ollama) sends it as `reasoning_content` or `reasoning`
beside `content`: that becomes the same Thinking events (see _Thoughts).

Token counts (context fill, the overflow policy) come from the server's tokenizer where it
has an endpoint (llama-server and vLLM `/tokenize`, llama-cpp-python `/extras/tokenize`),
else from an estimate that is labelled as one. Everything a server sends is bounded before
it is kept: a line (MAX_LINE), a whole reply (MAX_STREAM), a JSON answer (MAX_BODY), and a
silence (the [backend] timeout, which Ctrl+C cuts short).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lcchat.engine.events import Done, Error, Event, Notice, ReplyLimit, Stats, Thinking, Token
from lcchat.engine.generate import StopFilter
from lcchat.engine.reasoning import Splitter
from lcchat.errors import InputError, LcchatError
from lcchat.textsafe import one_line

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("lcchat.remote")

MAX_LINE = 1 << 20  # the longest line of an event stream kept (1 MiB)
MAX_STREAM = 64 << 20  # the most a reply's stream may send (64 MiB)
MAX_BODY = 4 << 20  # the largest JSON answer read (models, props, tokenize)
CONNECT_S = 10.0
STATS_EVERY_S = 0.25
BYTES_PER_TOKEN = 4  # the estimate when the server has no tokenizer endpoint
# Where servers put the thinking they split off a reply: llama-server and older vLLM
# `reasoning_content`, newer vLLM and Ollama's OpenAI endpoint `reasoning`.
REASONING_FIELDS = ("reasoning_content", "reasoning")
BUDGET_NOT_APPLIED = ("a thinking budget is not applied on a server (lcchat does not choose its tokens); "
                      "start llama-server with --reasoning-budget N instead")
CONTEXT_ERRORS = ("context length", "context window", "context size", "exceed_context", "maximum context",
                  "context_length_exceeded", "too many tokens")


class RemoteError(LcchatError):
    """The server could not be used: unreachable, refused the key, no such model."""


# ---------------------------------------------------------------- what the server says


@dataclass
class ServerFacts:
    """What the server told lcchat when it connected (its own words, bounded and cleaned)."""

    url: str
    model: str
    models: list[str] = field(default_factory=list)
    kind: str = "OpenAI-compatible server"
    n_ctx: int = 0
    n_ctx_from: str = "server"  # "server", or "profile" when the server does not say
    tokenizer: str = ""  # the tokenize endpoint's path; "" when counts are estimated
    chat_template: str = ""
    bos_text: str = ""
    eos_text: str = ""
    extra: dict[str, str] = field(default_factory=dict)  # other figures the server reported


def chat_api(backend, chat) -> bool:
    """Whether replies come from /v1/chat/completions: [backend] api says; "auto" (the
    default) means completions when the profile names a template or format (the profile
    is the source of truth), chat otherwise (the server applies its own template)."""
    if backend.api != "auto":
        return backend.api == "chat"
    return not (chat.template or chat.format)


def _auth_hint(env: str) -> str:
    if not env:
        return "set [backend] api_key_env to the environment variable that holds its key"
    if os.environ.get(env):
        return f"check the key in ${env}"
    return f"set ${env} to its key"


def _json(response: httpx.Response) -> Any:
    """A JSON answer, read up to MAX_BODY; None when it is not JSON or too large."""
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) > MAX_BODY:
            return None
    try:
        return json.loads(bytes(data))
    except ValueError:
        return None


def _detail(body: Any) -> str:
    """A server's error message, from the shapes servers use ({"error": {"message"}},
    {"error": "..."}, {"detail": ...}, {"message": ...})."""
    if isinstance(body, dict):
        err = body.get("error", body.get("detail", body.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err.get("type", ""))
        if isinstance(err, list) and err:  # FastAPI's validation errors
            err = err[0].get("msg", "") if isinstance(err[0], dict) else err[0]
        if err:
            return one_line(str(err), 300)
    return ""


def connection_error(exc: BaseException, url: str) -> str:
    """One line for a transport failure: TLS, unreachable, a timeout."""
    import httpx  # here, not at the top: `import httpx` loads rich too (tests/test_layers.py)

    text = str(exc) or type(exc).__name__
    if "SSL" in text or "CERTIFICATE" in text.upper() or "TLS" in text:
        return f"TLS failed talking to {url}: {one_line(text, 200)} (is the URL's scheme right, and its certificate trusted?)"
    if isinstance(exc, httpx.TimeoutException):
        return f"the server at {url} did not answer in time; is it running and reachable?"
    return f"cannot reach the server at {url}: {one_line(text, 200)}; is it running, and is the URL right?"


def status_error(status: int, body: Any, facts: ServerFacts | None, backend, url: str) -> LcchatError:
    """One error for an HTTP error status, in lcchat's words."""
    from lcchat.errors import PromptTooLong

    detail = _detail(body)
    if status in (401, 403):
        return RemoteError(f"the server at {url} refused the request (HTTP {status}, {detail or 'no API key or a wrong one'}); "
                           f"{_auth_hint(backend.api_key_env)}")
    low = detail.lower()
    if any(word in low for word in CONTEXT_ERRORS):
        n_ctx = facts.n_ctx if facts else 0
        return PromptTooLong(f"the conversation does not fit the server's context ({n_ctx} tokens): {detail}; "
                             "the server's context is set where it starts (llama-server -c, vLLM --max-model-len)")
    if status == 404:
        if facts is not None and "model" in low:
            served = ", ".join(facts.models[:8]) or "none listed"
            return InputError(f"the server has no model {facts.model!r} (it serves: {served}); set [backend] model")
        return RemoteError(f"the server at {url} has no such endpoint (HTTP 404{': ' + detail if detail else ''}); "
                           "is it an OpenAI-compatible server? [backend] api = \"chat\" or \"completions\" chooses the endpoint")
    return RemoteError(f"the server at {url} answered HTTP {status}{': ' + detail if detail else ''}")


# ---------------------------------------------------------------- the model


class RemoteModel:
    """A model behind an OpenAI-compatible server, with the surface ChatSession uses."""

    n_batch = 512
    bos = -1
    add_bos = False

    def __init__(self, backend, profile_n_ctx: int, *, client: httpx.Client | None = None) -> None:
        import httpx
        self.backend = backend
        self.url = backend.url.rstrip("/")
        headers = {}
        key = os.environ.get(backend.api_key_env, "") if backend.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.client = client or httpx.Client(base_url=self.url, headers=headers,
                                             timeout=httpx.Timeout(backend.timeout, connect=CONNECT_S))
        self.abort_requested = False
        self.notices: list[str] = []
        started = time.perf_counter()
        self.facts = self._probe(profile_n_ctx)
        self.connect_s = time.perf_counter() - started
        self.n_ctx = self.facts.n_ctx
        self.bos_text = self.facts.bos_text
        self.eos_text = self.facts.eos_text
        self.path = self.facts.model  # what the store records as the model; `server` is the URL

    @property
    def server(self) -> str:
        return self.url

    # ------------------------------------------------------------ connecting

    def _get(self, path: str) -> tuple[int, Any]:
        import httpx

        try:
            with self.client.stream("GET", path, timeout=httpx.Timeout(self.backend.timeout, connect=CONNECT_S)) as r:
                return r.status_code, _json(r)
        except httpx.HTTPError as exc:
            raise RemoteError(connection_error(exc, self.url)) from exc

    def _post(self, path: str, body: dict) -> tuple[int, Any]:
        import httpx

        try:
            with self.client.stream("POST", path, json=body) as r:
                return r.status_code, _json(r)
        except httpx.HTTPError as exc:
            raise RemoteError(connection_error(exc, self.url)) from exc

    def _probe(self, profile_n_ctx: int) -> ServerFacts:
        """Ask the server what it serves (/v1/models), its context size and template
        (/props on llama-server, max_model_len on vLLM) and which tokenizer it offers."""
        backend = self.backend
        status, body = self._get("/v1/models")
        if status >= 400:
            raise status_error(status, body, None, backend, self.url)
        rows = body.get("data") if isinstance(body, dict) else None
        rows = [r for r in rows if isinstance(r, dict) and isinstance(r.get("id"), str)] if isinstance(rows, list) else []
        models = [one_line(r["id"], 200) for r in rows[:100]]
        name = backend.model or (models[0] if models else "")
        facts = ServerFacts(url=self.url, model=name, models=models)
        if backend.model and models and backend.model not in models:
            raise status_error(404, {"error": "model not found"}, facts, backend, self.url)
        row = next((r for r in rows if r.get("id") == name), {})
        if isinstance(row.get("max_model_len"), int):  # vLLM
            facts.n_ctx, facts.kind = row["max_model_len"], "vLLM"
        if isinstance(row.get("owned_by"), str):
            facts.extra["owned by"] = one_line(row["owned_by"], 100)
        status, props = self._get("/props")
        if status == 200 and isinstance(props, dict):
            self._take_props(facts, props)
        if facts.n_ctx <= 0:
            facts.n_ctx, facts.n_ctx_from = int(profile_n_ctx or 4096), "profile"
            self.notices.append(f"the server does not say its context size; assuming the profile's n_ctx "
                                f"({facts.n_ctx} tokens): set [model] n_ctx to the server's")
        facts.tokenizer = self._find_tokenizer(facts)
        if not facts.tokenizer:
            self.notices.append("the server has no tokenize endpoint: token counts (context fill, the overflow "
                                f"policy) are estimated at {BYTES_PER_TOKEN} bytes a token")
        return facts

    def _take_props(self, facts: ServerFacts, props: dict) -> None:
        """llama-server's /props: n_ctx (in default_generation_settings, or at the top in
        newer releases), its chat template, BOS/EOS texts, the model file."""
        settings = props.get("default_generation_settings")
        for where in (props, settings if isinstance(settings, dict) else {}):
            if isinstance(where.get("n_ctx"), int) and where["n_ctx"] > 0:
                facts.n_ctx = where["n_ctx"]
        facts.kind = "llama-server"
        if isinstance(props.get("chat_template"), str) and len(props["chat_template"]) < 1 << 20:
            facts.chat_template = props["chat_template"]
        for key in ("bos_token", "eos_token"):
            if isinstance(props.get(key), str) and len(props[key]) < 256:
                setattr(facts, key.replace("_token", "_text"), props[key])
        for key in ("model_path", "total_slots", "build_info"):
            if isinstance(props.get(key), (str, int)):
                facts.extra[key.replace("_", " ")] = one_line(str(props[key]), 200)

    _TOKENIZERS = (
        ("/tokenize", lambda model, text: {"content": text, "add_special": False}),  # llama-server
        ("/tokenize", lambda model, text: {"model": model, "prompt": text, "add_special_tokens": False}),  # vLLM
        ("/extras/tokenize", lambda model, text: {"model": model, "input": text}),  # llama-cpp-python
    )

    def _find_tokenizer(self, facts: ServerFacts) -> str:
        for i, (path, body) in enumerate(self._TOKENIZERS):
            try:
                status, answer = self._post(path, body(facts.model, "Hello"))
            except RemoteError:
                return ""
            if status == 200 and _tokens(answer) is not None:
                self._tokenizer = i
                if path == "/extras/tokenize" and facts.kind == "OpenAI-compatible server":
                    facts.kind = "llama-cpp-python server"
                return path
        return ""

    # ------------------------------------------------------------ the model surface

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = True) -> list[int]:
        """The server's tokens for `text`, or an estimate's stand-ins (zeros) when it has no
        tokenizer or it fails now (the reply request then says what is wrong)."""
        if self.facts.tokenizer and text:
            path, body = self._TOKENIZERS[self._tokenizer]
            try:
                status, answer = self._post(path, body(self.facts.model, text))
                tokens = _tokens(answer) if status == 200 else None
                if tokens is not None:
                    return tokens
            except RemoteError:
                log.debug("tokenizing on the server failed; estimating", exc_info=True)
        return [0] * ((len(text.encode("utf-8")) + BYTES_PER_TOKEN - 1) // BYTES_PER_TOKEN)

    @property
    def counts_estimated(self) -> bool:
        return not self.facts.tokenizer

    def control_texts(self) -> list[str]:
        return [t for t in (self.bos_text, self.eos_text) if t]

    def eog_texts(self) -> list[str]:
        return [self.eos_text] if self.eos_text else []

    def kv_truncate(self, n_keep: int) -> None:
        """The server keeps its own cache; nothing to drop here."""

    # What engine/protocol.py asks of a backend that is not token-level: no KV state to
    # save (the store keeps none), no vocabulary beyond what the server said.
    n_vocab = 0
    info = None

    def state_fingerprint(self) -> None:
        return None

    def load_state(self, data) -> bool:
        return False

    def is_loaded(self) -> bool:
        return not self.client.is_closed

    def piece(self, token: int) -> bytes:
        return b""

    def token_text(self, token: int) -> str:
        return ""

    def token_attr(self, token: int) -> int:
        return 0

    def is_eog(self, token: int) -> bool:
        return False

    def reply_source(self) -> RemoteReplies:
        return RemoteReplies(self)

    def describe(self) -> dict[str, object]:
        f = self.facts
        return {"file": f.model, "path": f.model, "remote": self.url, "server": f.kind, "architecture": f.kind,
                "quant": "", "parameters": 0, "size_bytes": 0, "train_ctx": 0, "n_ctx": f.n_ctx,
                "threads": "remote", "gpu_layers": "remote", "rope": "the server's", "cache_type": "the server's",
                "load_s": self.connect_s}

    use_chat = True  # which endpoint replies come from (set by open_remote)

    def prompt_note(self) -> str:
        """What --show-prompt's text is for a remote model."""
        counted = f"counted by the server's tokenizer ({self.facts.tokenizer})" if self.facts.tokenizer else "estimated"
        if self.use_chat:
            return (f"remote, /v1/chat/completions: the server renders the messages with its own template; "
                    f"below is lcchat's rendering, used only to count tokens ({counted})")
        return f"remote, /v1/completions: this text is sent as the prompt; tokens {counted}"

    def report(self) -> list[str]:
        """What the server reports about itself, for /quant."""
        f = self.facts
        lines = [f"remote model {f.model} on {f.kind} at {self.url}",
                 f"context: {f.n_ctx} tokens" + (" (from the profile; the server does not say)" if f.n_ctx_from == "profile" else ""),
                 f"token counts: {'the server tokenizer (' + f.tokenizer + ')' if f.tokenizer else 'estimated'}"]
        if len(f.models) > 1:
            lines.append("models served: " + ", ".join(f.models[:8]))
        lines += [f"{key}: {value}" for key, value in f.extra.items()]
        lines.append("quantization is the server's: choose it where the server loads the model")
        return lines

    def close(self) -> None:
        self.client.close()


def _tokens(answer: Any) -> list[int] | None:
    tokens = answer.get("tokens") if isinstance(answer, dict) else None
    if isinstance(tokens, list) and all(isinstance(t, int) for t in tokens):
        return tokens
    if isinstance(tokens, list) and all(isinstance(t, dict) and isinstance(t.get("id"), int) for t in tokens):
        return [t["id"] for t in tokens]  # llama-server with_pieces
    return None


# ---------------------------------------------------------------- one reply


_END = ("end",)


class _Reader(threading.Thread):
    """Reads one response's body in its own thread, as lines, into a bounded queue: the
    session's thread waits on the queue, so Ctrl+C (cancel) and a stall are noticed at
    once whatever the socket is doing. Lines are split here from httpx's byte chunks so
    that no line longer than MAX_LINE is ever held."""

    def __init__(self, client: httpx.Client, path: str, body: dict) -> None:
        super().__init__(name="lcchat-remote", daemon=True)
        self.client, self.path, self.body = client, path, body
        self.items: queue.Queue = queue.Queue(maxsize=1024)
        self.stopped = threading.Event()

    def put(self, item: tuple) -> None:
        while not self.stopped.is_set():
            try:
                self.items.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def run(self) -> None:
        import httpx

        try:
            with self.client.stream("POST", self.path, json=self.body) as response:
                if response.status_code >= 400:
                    self.put(("status", response.status_code, _json(response)))
                    return
                self.put(("open",))
                pending, total = b"", 0
                for chunk in response.iter_bytes():
                    if self.stopped.is_set():
                        return  # leaving the block closes the connection: the server stops
                    total += len(chunk)
                    if total > MAX_STREAM:
                        self.put(("fault", f"the server sent more than {MAX_STREAM >> 20} MiB for one reply; stopped reading"))
                        return
                    *lines, pending = (pending + chunk).split(b"\n")
                    if lines:
                        self.put(("lines", lines))  # one hand-over per chunk, not per line
                    if len(pending) > MAX_LINE:
                        self.put(("fault", f"the server sent a line longer than {MAX_LINE >> 20} MiB; stopped reading"))
                        return
                if pending:
                    self.put(("lines", [pending]))
                self.put(_END)
        except httpx.HTTPError as exc:
            self.put(("error", exc))
        except Exception as exc:  # noqa: BLE001 - handed to the session's thread as a failure
            self.put(("error", exc))


class _Events:
    """Server-sent events from lines: `data:` fields joined until a blank line (the
    smallest correct reading of the SSE format); comments and other fields ignored."""

    def __init__(self) -> None:
        self.data: list[str] = []

    def line(self, raw: bytes) -> str | None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        if not text:
            return self.flush()
        if text.startswith("data:"):
            value = text[5:]
            self.data.append(value.removeprefix(" "))
        return None

    def flush(self) -> str | None:
        if not self.data:
            return None
        out, self.data = "\n".join(self.data), []
        return out


@dataclass
class _Figures:
    """What the stream says about the reply's cost, from the server where it says it."""

    prompt_n: int = 0
    prompt_per_s: float = 0.0
    completion_n: int = 0
    reasoning_n: int = 0  # of completion_n, the thinking tokens, where the server counts them
    gen_per_s: float = 0.0
    from_server: bool = False

    def take(self, chunk: dict) -> None:
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            if isinstance(usage.get("prompt_tokens"), int):
                self.prompt_n = usage["prompt_tokens"]
            if isinstance(usage.get("completion_tokens"), int):
                self.completion_n = usage["completion_tokens"]
            details = usage.get("completion_tokens_details")  # the OpenAI API's, vLLM's
            if isinstance(details, dict) and isinstance(details.get("reasoning_tokens"), int):
                self.reasoning_n = details["reasoning_tokens"]
        timings = chunk.get("timings")  # llama-server
        if isinstance(timings, dict):
            number = (int, float)
            if isinstance(timings.get("predicted_per_second"), number):
                self.gen_per_s, self.from_server = float(timings["predicted_per_second"]), True
            if isinstance(timings.get("prompt_per_second"), number):
                self.prompt_per_s = float(timings["prompt_per_second"])
            if isinstance(timings.get("predicted_n"), int):
                self.completion_n = timings["predicted_n"]
            if isinstance(timings.get("prompt_n"), int):
                self.prompt_n = timings["prompt_n"]


class RemoteReplies:
    """The remote counterpart of the TokenLoop: streams one reply at a time from the
    server, holds the context figure (`cached` stands for the tokens the conversation
    fills), and stops at once on cancel()."""

    def __init__(self, model: RemoteModel) -> None:
        self.model = model
        self.cached: list[int] = []
        self.cancel_event = threading.Event()
        self._reader: _Reader | None = None
        self.chat_settings: Any = None  # the profile's [chat] and stops, set by the session
        self.profile_stops: list[str] = []
        self._budget_said = False  # BUDGET_NOT_APPLIED is said once a session

    def reset(self) -> None:
        self.cached = []

    def cancel(self) -> None:
        self.cancel_event.set()
        reader = self._reader
        if reader is not None:
            reader.stopped.set()
            try:
                reader.items.put_nowait(("cancel",))
            except queue.Full:
                pass  # the waiting thread is busy with items and checks cancel_event between them

    def feed(self, tokens: list[int], what: str, *, fresh_logits: bool = False, stop=None) -> Iterator:
        """The history is on the server's side of the wire: nothing to evaluate here, only
        the context figure to set."""
        self.cached = list(tokens)
        return iter(())

    # ------------------------------------------------------------ a reply

    def request(self, prompt, messages: list[dict], sampling, stops: list[str],
                thinking: bool | None = None) -> tuple[str, dict]:
        """The endpoint and body for one reply. `thinking` (/think on|off; None: as the
        template does) goes to the chat API as chat_template_kwargs' enable_thinking, which
        llama-server and vLLM pass to the template they render with (templates that do not
        read it ignore it); with the completions API lcchat's own rendering holds it."""
        model = self.model
        backend = model.backend
        body: dict[str, Any] = {"model": model.facts.model, "stream": True,
                                "stream_options": {"include_usage": True}}
        use_chat = chat_api(backend, self.chat_settings)
        if use_chat:
            body["messages"] = messages
            stops = [s for s in self.profile_stops if s]
            if thinking is not None:
                body["chat_template_kwargs"] = {"enable_thinking": thinking}
        else:
            body["prompt"] = prompt.text
        body.update(sampling_body(sampling, room=prompt.room))
        if stops:
            body["stop"] = stops[:16]
        return ("/v1/chat/completions" if use_chat else "/v1/completions"), body

    def stream(self, prompt, messages: list[dict], sampling, stop, result, reasoning=None,
               thinking: bool | None = None) -> Iterator[Event]:
        """Stream one reply as events, through `stop` (the session's StopFilter) and
        `reasoning` (the session's engine.generate.Reasoning, None for a model that does not
        reason), into `result` (answer, thinking, finish reason, stats), as TokenLoop.run
        does. `thinking` is /think's on/off (see request). A thinking budget cannot be kept
        here: the server chooses the tokens; that is said once (BUDGET_NOT_APPLIED)."""
        import httpx

        model = self.model
        self.cancel_event.clear()
        if reasoning is not None and reasoning.budget >= 0 and not self._budget_said:
            self._budget_said = True
            yield Notice(BUDGET_NOT_APPLIED, "warning")
        path, body = self.request(prompt, messages, sampling, stop.stops, thinking)
        reader = self._reader = _Reader(model.client, path, body)
        n_prompt = len(prompt.tokens)
        base = Stats(prompt_tokens=n_prompt, prompt_eval_tokens=n_prompt, context_used=n_prompt,
                     context_size=model.n_ctx)
        self.cached = list(prompt.tokens)
        figures = _Figures()
        events = _Events()
        thoughts = _Thoughts(reasoning, result, stop.stops + stop.hidden)
        started = time.perf_counter()
        counter = _Counter()
        finish, problem, opened = "stop", None, False
        next_stats = started + STATS_EVERY_S
        timeout = float(model.backend.timeout)
        reader.start()
        try:
            while True:
                if self.cancel_event.is_set():
                    finish = "interrupted"
                    break
                try:
                    item = reader.items.get(timeout=timeout)
                except queue.Empty:
                    problem = _stalled(timeout, result)
                    break
                kind = item[0]
                if kind == "cancel":
                    finish = "interrupted"
                    break
                if kind == "status":
                    problem = status_error(item[1], item[2], model.facts, model.backend, model.url)
                    break
                if kind == "error" and isinstance(item[1], httpx.ReadTimeout):
                    problem = _stalled(timeout, result)
                    break
                if kind == "error":
                    problem = (connection_error(item[1], model.url) if not opened else
                               f"the server closed the connection mid-reply ({one_line(str(item[1]) or type(item[1]).__name__, 120)})"
                               + ("; the partial reply is kept" if _kept(result) else ""))
                    break
                if kind == "fault":
                    problem = item[1]
                    break
                if kind == "open":
                    opened = True
                    continue
                if kind == "lines":
                    batch = [d for d in map(events.line, item[1]) if d is not None]
                else:  # the end of the body: an event not closed by a blank line still counts
                    last = events.flush()
                    batch = [last] if last is not None else []
                outcome = yield from self._take(batch, stop, thoughts, figures, counter)
                if outcome is not None:
                    finish, problem = outcome
                    break
                if kind == "end":
                    finish = counter.reason  # the body ended without [DONE]: what came is the reply
                    break
                if time.perf_counter() >= next_stats:
                    next_stats = time.perf_counter() + STATS_EVERY_S
                    yield self._stats(base, figures, counter, started, result)
        finally:
            reader.stopped.set()
            self._reader = None
        yield from thoughts.finish(stop.flush())
        if finish == "length" and problem is None:
            yield Notice(str(ReplyLimit(sampling.max_tokens)), fact=ReplyLimit(sampling.max_tokens))
        hid = stop.hid + thoughts.filter.hid
        if hid:
            yield Notice(f"hid special-token text the model wrote as plain text: {', '.join(dict.fromkeys(hid))}", "warning")
        result.stats = self._stats(base, figures, counter, started, result, final=True)
        self.cached = list(prompt.tokens) + [0] * result.stats.completion_tokens
        yield result.stats
        if problem is not None:
            # Nothing is lost: the session records the partial reply, marked interrupted.
            result.finish_reason = "interrupted"
            if isinstance(problem, LcchatError):
                yield Error(str(problem), problem.exit_code)
            else:
                yield Error(problem)
            yield Done("error", result.text, result.reasoning)
            return
        result.finish_reason = finish
        yield Done(finish, result.text, result.reasoning)  # type: ignore[arg-type]

    def _take(self, batch: list[str], stop, thoughts: _Thoughts, figures: _Figures,
              counter: _Counter) -> Iterator[Event]:
        """Events for a batch of event data; returns (finish, problem) when the reply ends
        with it ([DONE], a stop string, malformed data, an error event), else None."""
        from lcchat.engine.session import _clean

        for data in batch:
            if data.strip() == "[DONE]":
                return counter.reason, None
            try:
                chunk = json.loads(data)
            except ValueError:
                return "stop", f"the server sent malformed data (not JSON): {one_line(data, 80)}"
            if not isinstance(chunk, dict):
                return "stop", f"the server sent malformed data: {one_line(data, 80)}"
            if chunk.get("error"):
                return "stop", f"the server reported an error mid-reply: {_detail(chunk) or 'no detail'}"
            figures.take(chunk)
            text, thought, reason = _choice(chunk)
            if text or thought:
                counter.tick()
            if thought:
                yield from thoughts.thought(_clean(thought))
            if text:
                yield from thoughts.answer(stop.feed(_clean(text)))
                if stop.stopped_by is not None:
                    return "stop", None
            if reason in ("length", "stop"):
                counter.reason = reason
        return None

    def _stats(self, base: Stats, figures: _Figures, counter: _Counter, started: float, result,
               final: bool = False) -> Stats:
        pieces, first_at = counter.pieces, counter.first_at
        n = figures.completion_n or pieces
        span = counter.last_at - first_at
        rate = figures.gen_per_s if figures.from_server else ((pieces - 1) / span if span > 0 and pieces > 1 else 0.0)
        prompt_n = figures.prompt_n or base.prompt_tokens
        ttft = (first_at - started) if first_at else 0.0
        prompt_rate = figures.prompt_per_s if figures.from_server else (prompt_n / ttft if ttft > 0 else 0.0)
        note = "remote: server's figures" if figures.from_server else "remote: measured by lcchat"
        if self.model.counts_estimated:
            note += ", token counts estimated"
        return Stats(prompt_tokens=prompt_n, prompt_eval_tokens=prompt_n, prompt_tokens_per_s=prompt_rate,
                     completion_tokens=n, tokens_per_s=rate, ttft_s=ttft,
                     context_used=base.prompt_tokens + n, context_size=base.context_size, final=final, note=note,
                     reasoning_tokens=figures.reasoning_n or result.reasoning_tokens)


class _Counter:
    """When the reply's text pieces came, and how many (one per token on llama.cpp servers)."""

    def __init__(self) -> None:
        self.pieces = 0
        self.first_at = self.last_at = 0.0
        self.reason = "stop"  # the finish reason the server gave ("length" at max_tokens)

    def tick(self) -> None:
        self.last_at = time.perf_counter()
        self.first_at = self.first_at or self.last_at
        self.pieces += 1


def _kept(result) -> bool:
    """Whether a reply that failed has something to keep: answer or thinking."""
    return bool(result.parts or result.thinking)


def _stalled(timeout: float, result) -> str:
    return (f"the server sent nothing for {timeout:g} s (a stalled stream; [backend] timeout)"
            + ("; the partial reply is kept" if _kept(result) else ""))


def _choice(chunk: dict) -> tuple[str, str, str | None]:
    """The text, the thinking the server split off (REASONING_FIELDS; chat only) and the
    finish reason of a streamed chunk: chat (choices[0].delta) or completions
    (choices[0].text). Fields of another type than text are ignored."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "", "", None
    first = choices[0]
    delta = first.get("delta")
    thought: Any = ""
    if isinstance(delta, dict):
        text = delta.get("content")
        thought = next((delta[k] for k in REASONING_FIELDS if isinstance(delta.get(k), str) and delta[k]), "")
    else:
        text = first.get("text")
    reason = first.get("finish_reason")
    return (text if isinstance(text, str) else ""), thought, (reason if isinstance(reason, str) else None)


class _Thoughts:
    """Sorts one reply into thinking and answer, as the token loop does (engine/generate.py):
    text the StopFilter let through goes to the session's reasoning Splitter (the markers of
    the profile or template, a block the template opened, markers split across chunks), its
    pieces becoming Thinking and Token events kept in the result. Thinking a server split
    off itself (REASONING_FIELDS) becomes Thinking as it comes, after a StopFilter that
    hides the stop and special-token texts in it (the server has stopped where it would);
    once a server does that, its content is the answer, and
    a fresh Splitter only takes out a block the server also left there (llama-server's
    --reasoning-format deepseek-legacy), whose thinking is already kept."""

    def __init__(self, reasoning, result, hidden: list[str]) -> None:
        self.splitter: Splitter | None = reasoning.splitter if reasoning is not None else None
        self.result = result
        self.filter = StopFilter([], hidden)
        self.server_splits = False

    def answer(self, text: str) -> Iterator[Event]:
        """Reply text the StopFilter let through (maybe none: a chunk still counts)."""
        result, splitter = self.result, self.splitter
        if splitter is None:
            if text:
                result.parts.append(text)
                yield Token(text)
            return
        was_inside, before = splitter.inside, len(result.thinking)
        yield from self._pieces(splitter.feed(text) if text else [])
        if not self.server_splits and (was_inside or splitter.inside or len(result.thinking) > before):
            result.reasoning_tokens += 1

    def thought(self, text: str) -> Iterator[Event]:
        """Thinking the server sent apart from the content."""
        if not self.server_splits:
            self.server_splits = True
            if self.splitter is not None:  # what the splitter held back is settled now
                yield from self._pieces(self.splitter.flush())
                self.splitter = Splitter(self.splitter.markers)
        self.result.reasoning_tokens += 1
        shown = self.filter.feed(text)
        if shown:
            self.result.thinking.append(shown)
            yield Thinking(shown)

    def finish(self, tail: str) -> Iterator[Event]:
        """The reply ended (done, stopped, interrupted, failed): what was held back is shown,
        an unclosed block stays thinking and marks the result `unclosed`, as locally."""
        held = self.filter.flush()
        if held:
            self.result.thinking.append(held)
            yield Thinking(held)
        splitter = self.splitter
        if splitter is None:
            if tail:
                self.result.parts.append(tail)
                yield Token(tail)
        else:
            yield from self._pieces((splitter.feed(tail) if tail else []) + splitter.flush())
        if self.server_splits:
            self.result.unclosed = not self.result.text.strip()
        else:
            self.result.unclosed = splitter is not None and splitter.unclosed

    def _pieces(self, pieces: list[tuple[bool, str]]) -> Iterator[Event]:
        result = self.result
        for thinking, piece in pieces:
            if not thinking:
                result.parts.append(piece)
                yield Token(piece)
            elif not self.server_splits:  # else the server's own copy of it is kept already
                result.thinking.append(piece)
                yield Thinking(piece)


def sampling_body(sampling, *, room: int) -> dict[str, Any]:
    """The profile's sampler settings in the request: the OpenAI names, plus the llama.cpp
    ones (top_k, min_p, repeat_penalty, mirostat) that llama-server, llama-cpp-python and
    vLLM read and others ignore. repeat_last_n goes as llama-server's field; llama-cpp-python's
    server has none (it looks at the last 64 tokens)."""
    body: dict[str, Any] = {
        "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k,
        "min_p": sampling.min_p, "repeat_penalty": sampling.repeat_penalty,
        "repeat_last_n": sampling.repeat_last_n,
        "presence_penalty": sampling.presence_penalty, "frequency_penalty": sampling.frequency_penalty,
        "max_tokens": sampling.max_tokens if sampling.max_tokens >= 0 else max(room, 1),
    }
    if sampling.seed >= 0:
        body["seed"] = sampling.seed
    if sampling.mirostat:
        body.update(mirostat=sampling.mirostat, mirostat_mode=sampling.mirostat,
                    mirostat_tau=sampling.mirostat_tau, mirostat_eta=sampling.mirostat_eta)
    return body


# ---------------------------------------------------------------- opening


def open_remote(profile) -> tuple[RemoteModel, Any, list[str]]:
    """Connect to the profile's server: (model, formatter, notices). The formatter renders
    completions prompts and counts tokens: the profile's template or format, else the
    server's template (/props), else ChatML (for counting only, with the chat API)."""
    from lcchat.engine import templates

    model = RemoteModel(profile.backend, profile.model.n_ctx)
    notices = list(model.notices)
    chat = profile.chat
    use_chat = chat_api(profile.backend, chat)
    found: list[str] = []
    try:
        formatter = templates.choose(profile_template=chat.template, profile_format=chat.format,
                                     gguf_template=model.facts.chat_template or None,
                                     bos_token=model.bos_text, eos_token=model.eos_text, notices=found)
    except LcchatError:
        model.close()
        raise
    model.use_chat = use_chat
    if not use_chat:
        notices += found  # with the chat API the server's own template is used; counting is all this does
    return model, formatter, notices
