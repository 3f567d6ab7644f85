"""ChatSession: one conversation with one model. Every front-end drives this.

send() yields events while a reply is produced and records the turn when it ends, the
partial reply included when it is interrupted. cancel() may be called from any thread.
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from lcchat.config.schema import Profile
from lcchat.engine import templates
from lcchat.engine.chat import Conversation, Message, build_prompt
from lcchat.engine.events import Done, Error, Event, Notice, Stats
from lcchat.engine.generate import Generation, StopFilter, TokenLoop
from lcchat.errors import LcchatError

log = logging.getLogger("lcchat.session")

TurnListener = Callable[["ChatSession", Message, Message], None]


@dataclass
class ChatSession:
    model: object  # engine.model.Model or a fake with the same surface
    profile: Profile
    formatter: templates.Formatter
    notices: list[str] = field(default_factory=list)  # said once, at start
    conversation: Conversation = field(default_factory=Conversation)

    def __post_init__(self) -> None:
        self.sampling = copy.deepcopy(self.profile.sampling)
        self.conversation.system = self.conversation.system or self.profile.chat.system
        self.loop = TokenLoop(self.model)  # type: ignore[arg-type]
        self.last_stats: Stats | None = None
        self.listeners: list[TurnListener] = []
        self._lock = threading.Lock()
        self.extra_stops: list[str] = []
        # The text the KV cache holds (prompt + reply as evaluated) and its token count:
        # a next prompt that starts with this text reuses those tokens as they are, so a
        # follow-up turn evaluates only what is new even where re-tokenizing the reply
        # would split it differently.
        self._cached_text = ""
        self._cached_n = 0
        self.stops, self.hidden = self._derive_stops()

    # ------------------------------------------------------------ stops

    def _derive_stops(self) -> tuple[list[str], list[str]]:
        """Stop strings: the profile's, the format's, the model's EOS/EOT, and any control
        token that the template uses as a turn marker. Other control tokens are hidden."""
        stops = [*self.profile.chat.stop, *self.extra_stops, *self.formatter.stop, *self.model.eog_texts()]
        controls = self.model.control_texts()
        try:
            sample = self.formatter.render([{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                                            {"role": "assistant", "content": "a"}, {"role": "user", "content": "v"}])
        except templates.TemplateError:
            sample = ""
        bos = getattr(self.model, "bos_text", "")
        markers = [c for c in controls if c in sample and c != bos]
        stops += markers
        hidden = [c for c in controls if c not in stops]
        return list(dict.fromkeys(s for s in stops if s)), hidden

    def set_stops(self, extra: list[str]) -> None:
        self.extra_stops = list(extra)
        self.stops, self.hidden = self._derive_stops()

    # ------------------------------------------------------------ turns

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def send(self, text: str) -> Iterator[Event]:
        """Add a user message and stream the reply."""
        text = _clean(text)
        if not text.strip():
            yield Error("the message is empty", 2)
            return
        with self._guard() as ok:
            if not ok:
                yield Error("a reply is already being generated")
                return
            user = Message("user", text)
            self.conversation.messages.append(user)
            yield from self._reply(user)

    def retry(self) -> Iterator[Event]:
        """Generate the last reply again."""
        with self._guard() as ok:
            if not ok:
                yield Error("a reply is already being generated")
                return
            msgs = self.conversation.messages
            if msgs and msgs[-1].role == "assistant":
                msgs.pop()
            if not msgs or msgs[-1].role != "user":
                yield Error("there is no message to answer again")
                return
            yield from self._reply(msgs[-1])

    def _reply(self, user: Message) -> Iterator[Event]:
        conv = self.conversation
        model = self.model
        try:
            prompt = build_prompt(conv, self.formatter, self._tokenize, n_ctx=model.n_ctx,
                                  reserve=self.profile.context.reserve, policy=self.profile.context.overflow)
        except LcchatError as exc:
            conv.messages.pop()
            yield Error(str(exc), exc.exit_code)
            return
        if prompt.dropped:
            turns = prompt.dropped
            yield Notice(f"dropped {turns} oldest message{'s' if turns != 1 else ''} to fit the context "
                         f"({model.n_ctx} tokens); the system prompt is kept", "warning")
        stop = StopFilter(self.stops, self.hidden)
        result = Generation()
        self._cached_text, self._cached_n = "", 0
        try:
            for event in self.loop.run(prompt.tokens, self.sampling, stop, result):
                if isinstance(event, Stats) and event.final:
                    self.last_stats = event
                yield event
        except GeneratorExit:
            # The front-end stopped reading (Ctrl+C in its loop): keep what was generated.
            self.loop.cancel()
            self._record(user, result.text or "", interrupted=True)
            raise
        except Exception as exc:  # noqa: BLE001 - the session must survive a failed turn
            log.debug("generation failed", exc_info=True)
            self.loop.reset()
            self._record(user, result.text, interrupted=True)
            yield Error(f"generation failed: {exc}")
            yield Done("error", result.text)
            return
        self._remember_cache(prompt, result)
        self._record(user, result.text, interrupted=result.finish_reason == "interrupted")

    def _remember_cache(self, prompt, result: Generation) -> None:
        cached = self.loop.cached
        n = len(prompt.tokens) + len(result.evaluated)
        if len(cached) == n and cached[: len(prompt.tokens)] == prompt.tokens:
            reply = b"".join(result.evaluated).decode("utf-8", "replace")
            self._cached_text, self._cached_n = prompt.text + reply, n

    def _record(self, user: Message, text: str, *, interrupted: bool) -> None:
        reply = Message("assistant", text, interrupted=interrupted)
        self.conversation.messages.append(reply)
        for listener in list(self.listeners):
            try:
                listener(self, user, reply)
            except Exception:  # noqa: BLE001 - saving must never end the chat
                log.warning("a turn listener failed", exc_info=True)

    def _tokenize(self, text: str) -> list[int]:
        model = self.model
        known, n = self._cached_text, self._cached_n
        if known and text.startswith(known) and len(self.loop.cached) >= n:
            return self.loop.cached[:n] + model.tokenize(text[len(known):], add_bos=False, special=True)
        bos = getattr(model, "bos_text", "")
        add_bos = bool(getattr(model, "add_bos", False)) and not (bos and text.startswith(bos))
        return model.tokenize(text, add_bos=add_bos, special=True)

    def cancel(self) -> None:
        """Stop the reply being generated, if any (thread-safe, returns at once)."""
        self.loop.cancel()

    def undo(self) -> bool:
        """Drop the last exchange (the last user message and its reply)."""
        msgs = self.conversation.messages
        if not msgs or self.busy:
            return False
        if msgs[-1].role == "assistant":
            msgs.pop()
        if msgs and msgs[-1].role == "user":
            msgs.pop()
        self.conversation.window_start = min(self.conversation.window_start, len(msgs))
        return True

    def clear(self) -> None:
        """Forget the history and the KV cache; keep the system prompt."""
        self.conversation.clear()
        self.loop.reset()
        self._cached_text, self._cached_n = "", 0
        self.last_stats = None

    def set_system(self, text: str) -> None:
        self.conversation.system = text

    @property
    def context_used(self) -> int:
        return len(self.loop.cached)

    @property
    def context_size(self) -> int:
        return int(self.model.n_ctx)

    class _GuardCM:
        def __init__(self, lock: threading.Lock):
            self.lock = lock
            self.ok = False

        def __enter__(self) -> bool:
            self.ok = self.lock.acquire(blocking=False)
            return self.ok

        def __exit__(self, *exc) -> None:
            if self.ok:
                self.lock.release()

    def _guard(self) -> "ChatSession._GuardCM":
        return ChatSession._GuardCM(self._lock)


def _clean(text: str) -> str:
    """Text safe to tokenize: lone surrogates (from undecodable input) and NULs replaced."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    return text.replace("\x00", "\ufffd")


# ---------------------------------------------------------------- opening a session


def open_session(profile: Profile, *, on_progress: Callable[[float], None] | None = None,
                 cancel: threading.Event | None = None) -> ChatSession:
    """Check the profile's model file, load it, choose the chat format: a ready session."""
    from lcchat.config.loader import resolve_model_path
    from lcchat.engine import gguf_info
    from lcchat.engine.model import Model

    path = resolve_model_path(profile)
    info = gguf_info.load_checked(path)
    model = Model(path, profile.model, profile.rope, seed=profile.sampling.seed,
                  on_progress=on_progress, cancel=cancel, info=info)
    notices = list(model.load.rope.warnings)
    formatter = templates.choose(
        profile_template=profile.chat.template, profile_format=profile.chat.format,
        gguf_template=info.chat_template, bos_token=model.bos_text, eos_token=model.eos_text, notices=notices,
    )
    return ChatSession(model=model, profile=profile, formatter=formatter, notices=notices)


def model_path_label(path: Path) -> str:
    return path.name
