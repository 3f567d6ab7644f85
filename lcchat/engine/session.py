"""ChatSession: one conversation with one model. Every front-end drives this.

send() yields events while a reply is produced and records the turn when it ends, the
partial reply included when it is interrupted. cancel() may be called from any thread.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator

from lcchat.config.schema import ModelSettings, Profile
from lcchat.engine import guard, reasoning, speculative, stops, templates
from lcchat.engine.chat import Conversation, Message, Prompt, build_prompt
from lcchat.engine.events import Done, Error, Event, Notice, Stats
from lcchat.engine.generate import DecodeError, Generation, Reasoning, StopFilter, TokenLoop, common_prefix
from lcchat.engine.protocol import ServedModel, ServedReplies, TokenModel
from lcchat.errors import EXIT_USAGE, LcchatError, PromptTooLong

log = logging.getLogger("lcchat.session")

TurnListener = Callable[["ChatSession", Message, Message], None]
SendHook = Callable[["ChatSession", Message], None]

# A user message that cannot occur in real text: rendering the history with it shows
# where the next user message goes (see history_prefix).
_PROBE = "\ue000\ue001\ue000"


@dataclass
class ChatSession:
    model: TokenModel | ServedModel  # engine.model.Model (engine.fake.FakeModel in tests), or engine.remote.RemoteModel
    profile: Profile
    formatter: templates.Formatter
    # Said once, at start, each with its level: a resume is news, a ChatML fallback a warning.
    notices: list[Notice] = field(default_factory=list)
    conversation: Conversation = field(default_factory=Conversation)
    # The [model] settings the model was loaded with: the profile's at first, another
    # file's or KV cache type's after a /quant switch (the profile itself is never changed).
    model_settings: ModelSettings | None = None

    def __post_init__(self) -> None:
        self.model_settings = self.model_settings or self.profile.model
        self.sampling = copy.deepcopy(self.profile.sampling)
        self.conversation.system = self.conversation.system or self.profile.chat.system
        self.loop = _reply_source(self.model, self.profile)
        spec = self.profile.speculative
        # Speculative decoding: the mode /spec switches, and the draft model open_session loads.
        self.speculation = self.loop.speculation = speculative.Speculation(mode=spec.mode, n_draft=spec.n_draft)
        self.last_stats: Stats | None = None
        self.listeners: list[TurnListener] = []  # told when a turn ends: (session, user, reply)
        self.on_send: list[SendHook] = []  # told when a user message is added, before its reply
        self.on_close: list[Callable[[ChatSession], None]] = []  # run by close(), before the model is freed
        self._pending: list[Notice] = []  # said after the current turn (see warn)
        self._lock = threading.Lock()
        self.extra_stops: list[str] = []
        # The text the KV cache holds (prompt + reply as evaluated) and its token count:
        # a next prompt that starts with this text reuses those tokens as they are, so a
        # follow-up turn evaluates only what is new even where re-tokenizing the reply
        # would split it differently.
        self._cached_text = ""
        self._cached_n = 0
        # A reasoning model's thinking: its markers (None: the model does not reason), whether
        # it thinks this turn (None: as the template does) and the thinking budget (-1: none).
        chat = self.profile.chat
        self.markers = self._detect_markers()
        self.thinking = None if chat.thinking == "auto" else chat.thinking in (True, "true")
        self.thinking_budget = chat.thinking_budget
        self.stops, self.hidden = self._derive_stops()
        self.specials = self._vocab_specials()

    # ------------------------------------------------------------ prompt text and tokens

    def _vocab_specials(self) -> guard.Specials:
        """Texts that must stay plain text inside messages: the vocab's control tokens, and
        the chat markers the template renames for this vocab (see templates.adapt_to_vocab)."""
        return guard.Specials(tuple(self.model.control_texts()) + tuple(self.formatter.renamed))

    @property
    def prompt_formatter(self) -> templates.Formatter:
        """The formatter prompts are rendered with: the session's, with message contents
        kept apart from the template's markers (guard.protect) unless the profile sets
        [chat] parse_special = true."""
        inner = self.formatter
        if self.profile.chat.parse_special:
            return inner
        specials = self.specials
        return templates.Formatter(source=inner.source, stop=inner.stop, text=inner.text, options=inner.options,
                                   render=lambda messages: guard.protect(inner.render, specials, messages, inner.text))

    # ------------------------------------------------------------ stops

    def _detect_markers(self) -> reasoning.Markers | None:
        info = self.model.info
        vocab = [*self.model.control_texts(), *(info.tokens if info is not None else ())]
        setting = list(self.profile.chat.reasoning)
        found = reasoning.detect(setting, self.formatter.text, vocab)
        if found is None and setting != ["none"] and isinstance(self.model, ServedModel):
            return reasoning.SERVER_DEFAULT  # a server's template and vocab are not known here
        return found

    def _derive_stops(self) -> tuple[list[str], list[str]]:
        """(stops, hidden) for this formatter and model: engine/stops.py. The reasoning
        markers are neither: the splitter takes them out of the answer."""
        found, hidden = stops.derive(self.formatter, self.model, [*self.profile.chat.stop, *self.extra_stops])
        if self.markers is not None:
            keep = (self.markers.open, self.markers.close)
            found = [s for s in found if s not in keep]
            hidden = [h for h in hidden if h not in keep]
        return found, hidden

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
            yield Error("the message is empty", EXIT_USAGE)
            return
        with self._guard() as ok:
            if not ok:
                yield Error("a reply is already being generated")
                return
            user = Message("user", text)
            self.conversation.messages.append(user)
            self._sent(user)
            yield from self._reply(user)

    def retry(self) -> Iterator[Event]:
        """Generate the last reply again."""
        with self._guard() as ok:
            if not ok:
                yield Error("a reply is already being generated")
                return
            msgs = self.conversation.messages
            end = len(msgs) - 1 if msgs and msgs[-1].role == "assistant" else len(msgs)
            if end == 0 or msgs[end - 1].role != "user":  # nothing is dropped then
                yield Error("there is no message to answer again")
                return
            del msgs[end:]
            yield from self._reply(msgs[-1])

    def _reply(self, user: Message) -> Iterator[Event]:
        conv = self.conversation
        model = self.model
        self._switch_thinking()
        try:
            prompt = self.turn_prompt(conv, self._tokenize)
            think = self._reasoning_for(prompt)
        except PromptTooLong as exc:
            conv.messages.pop()
            yield Error(str(exc), exc.exit_code, exc.fact)
            return
        except LcchatError as exc:
            conv.messages.pop()
            yield Error(str(exc), exc.exit_code)
            return
        if prompt.dropped:
            turns = prompt.dropped
            yield Notice(f"dropped {turns} oldest message{'s' if turns != 1 else ''} to fit the context "
                         f"({model.n_ctx} tokens); the system prompt is kept", "warning")
        if prompt.cut:
            yield Notice(f"cut the first {prompt.cut} tokens of the prompt to leave {prompt.room} for the reply "
                         f"(overflow = truncate-left, context {model.n_ctx} tokens)", "warning")
        stop = StopFilter(self.stops, self.hidden)
        result = Generation()
        self._cached_text, self._cached_n = "", 0
        try:
            for event in self._run(prompt, self._turn_sampling(), stop, result, think):
                if isinstance(event, Stats) and event.final:
                    self.last_stats = event
                yield event
        except GeneratorExit:
            # The front-end stopped reading (Ctrl+C in its loop): keep what was generated.
            self.loop.cancel()
            self._record(user, result.text or "", interrupted=True, thinking=result.reasoning)
            raise
        except Exception as exc:  # the session must survive a failed turn
            log.debug("generation failed", exc_info=True)
            self.loop.reset()
            self._record(user, result.text, interrupted=True, thinking=result.reasoning)
            yield Error(f"generation failed: {exc}")
            yield from self._drain()
            yield Done("error", result.text)
            return
        self._remember_cache(prompt, result)
        if result.unclosed:
            yield Notice("the reply ended while still thinking: its thinking is kept, apart; there is no answer",
                         "warning")
        self._record(user, result.text, interrupted=result.finish_reason == "interrupted" or result.unclosed,
                     thinking=result.reasoning)
        yield from self._drain()

    def _run(self, prompt, sampling, stop: StopFilter, result: Generation, think) -> Iterator[Event]:
        """The reply's events from its source: the token loop, or a server's stream
        (engine/remote.py), which takes the prompt's text and the window's messages, the
        same reasoning splitter, and /think's on/off for the server's template."""
        if isinstance(self.loop, ServedReplies):
            return self.loop.stream(prompt, self.conversation.chat_messages(), sampling, stop, result, think,
                                    self.thinking)
        return self.loop.run(prompt.tokens, sampling, stop, result, think)

    # ------------------------------------------------------------ thinking

    @property
    def thinking(self) -> bool | None:
        """Whether a reasoning model thinks this turn; None: as its template does (/think)."""
        return self._thinking

    @thinking.setter
    def thinking(self, value: bool | None) -> None:
        self._thinking = value
        self._switch_thinking()  # so /show prompt shows what the next turn will send

    def _switch_thinking(self) -> None:
        """Pass enable_thinking to a template that reads it (Qwen3's), or leave it unset."""
        options = self.formatter.options
        if self.markers is not None and self._thinking is not None and reasoning.takes_switch(self.formatter.text):
            options["enable_thinking"] = self._thinking
        else:
            options.pop("enable_thinking", None)

    def turn_prompt(self, conv: Conversation, tokenize: Callable[[str], list[int]]) -> Prompt:
        """The prompt a turn feeds the model for `conv`, text and tokens: the template's,
        fitted to the context (_build_prompt), and with thinking off on a template that has
        no switch, an empty thinking block after it (closed, as Qwen3's template writes one
        for enable_thinking=false), so the reply starts with the answer. A turn and
        `--show-prompt` / `/show prompt` (engine/prompt_view.py) both take it from here."""
        prompt = self._build_prompt(conv, tokenize)
        markers = self.markers
        if markers is not None and self.thinking is False and not reasoning.takes_switch(self.formatter.text):
            inside = reasoning.opened_by(prompt.text, markers)
            extra = ("\n" if inside else markers.open + "\n\n") + markers.close + "\n\n"
            prompt.text = guard.PromptText.of(prompt.text + extra, guard.literal_spans(prompt.text))
            prompt.tokens = prompt.tokens + self._written(extra)
        return prompt

    def _reasoning_for(self, prompt: Prompt) -> Reasoning | None:
        """The loop's reasoning part for this turn's prompt (turn_prompt): the reply starts
        inside the block when the prompt ends inside one the template opened."""
        markers = self.markers
        if markers is None:
            return None
        inside = reasoning.opened_by(prompt.text, markers)
        budget = self.thinking_budget
        writes = budget >= 0 and not isinstance(self.model, ServedModel)  # a server keeps no budget of ours
        close = [self._written(reasoning.closing(markers, after_newline=n)) if writes else []
                 for n in (False, True)]
        return Reasoning(reasoning.Splitter(markers, inside=inside), budget, *close)

    def _written(self, text: str) -> list[int]:
        """Tokens that write `text` (markers and newlines) where a model would write it, after
        text already there: each run of newlines and each run of other text is tokenized
        apart, without what a tokenizer puts at the start of a text and after a special
        token (the space llama.cpp adds for SentencePiece vocabs, which the model never
        writes there). A BPE vocab tokenizes such a text into the same runs anyway."""
        piece, tokens = self.model.piece, []
        for part in re.findall(r"\n+|[^\n]+", text):
            found = self._tokens(part, add_bos=False)
            want = part.encode("utf-8")
            for start in range(min(len(found), 4)):  # a space prefix is one token, or 3 byte tokens
                if b"".join(piece(t) for t in found[start:]) == want:
                    found = found[start:]
                    break
            tokens += found
        return tokens

    def _turn_sampling(self):
        """The session's sampling, with [sampling_no_think]'s settings while thinking is off."""
        if self.markers is None or self.thinking is not False:
            return self.sampling
        sampling = copy.copy(self.sampling)
        for name, value in vars(self.profile.sampling_no_think).items():
            if value != -1:
                setattr(sampling, name, value)
        return sampling

    def _build_prompt(self, conv: Conversation, tokenize: Callable[[str], list[int]]):
        """The prompt for `conv` under the profile's overflow policy (engine/chat.py)."""
        ctx = self.profile.context
        return build_prompt(conv, self.prompt_formatter, tokenize, n_ctx=self.model.n_ctx, reserve=ctx.reserve,
                            policy=ctx.overflow, max_new=self.sampling.max_tokens)

    def _remember_cache(self, prompt, result: Generation) -> None:
        cached = self.loop.cached
        n = len(prompt.tokens) + len(result.evaluated)
        if not prompt.cut and len(cached) == n and cached[: len(prompt.tokens)] == prompt.tokens:
            reply = b"".join(result.evaluated).decode("utf-8", "replace")
            self._cached_text, self._cached_n = prompt.text + reply, n

    def _sent(self, user: Message) -> None:
        """The store writes the message now, so a crash mid-reply cannot lose it."""
        for hook in list(self.on_send):
            try:
                hook(self, user)
            except Exception:  # saving must never end the chat
                log.warning("a send hook failed", exc_info=True)

    def _record(self, user: Message, text: str, *, interrupted: bool, thinking: str = "") -> None:
        reply = Message("assistant", text, interrupted=interrupted, reasoning=thinking.strip())
        self.conversation.messages.append(reply)
        for listener in list(self.listeners):
            try:
                listener(self, user, reply)
            except Exception:  # saving must never end the chat
                log.warning("a turn listener failed", exc_info=True)

    def warn(self, text: str) -> None:
        """Tell the user something after the current turn's events. Listeners run when the
        reply has ended; this is how they report a problem (the store: saving failed)."""
        self._pending.append(Notice(text, "warning"))

    def _drain(self) -> Iterator[Event]:
        while self._pending:
            yield self._pending.pop(0)

    def _tokenize(self, text: str) -> list[int]:
        """Tokens of a prompt. When it starts with the text the KV cache holds, those tokens
        are kept as they are and only the rest is tokenized; that is done only where the
        rest starts a tokenizer fragment (at a special token), so it tokenizes exactly as
        it would inside the whole text. Anywhere else the whole text is tokenized."""
        known, n = self._cached_text, self._cached_n
        if (known and text.startswith(known) and len(self.loop.cached) >= n
                and guard.starts_fragment(text, len(known), self.specials)):
            at = len(known)
            suffix = guard.PromptText.of(text[at:], [(a - at, b - at) for a, b in guard.literal_spans(text) if a >= at])
            return self.loop.cached[:n] + self._tokens(suffix, add_bos=False)
        return self._tokenize_whole(text)

    def tokenize_prompt(self, text: str) -> list[int]:
        """The tokens of a whole prompt, as a turn that reuses nothing would have them."""
        return self._tokenize_whole(text)

    def _tokenize_whole(self, text: str) -> list[int]:
        bos = self.model.bos_text
        return self._tokens(text, add_bos=self.adds_bos and not (bos and text.startswith(bos)))

    @property
    def adds_bos(self) -> bool:
        """Whether a prompt gets a BOS token in front ([chat] add_bos; "auto" asks the vocab)."""
        setting = self.profile.chat.add_bos
        if setting == "auto":
            return bool(self.model.add_bos)
        return setting in (True, "true")

    def _tokens(self, text: str, *, add_bos: bool) -> list[int]:
        """Tokenize prompt text: special tokens parsed everywhere except where message text
        lies that only looks like them (see engine/guard.py). The BOS token is put in
        front here rather than by llama.cpp, which adds one only when the vocab says so."""
        parts = [(text, True)] if self.profile.chat.parse_special else guard.pieces(text, self.specials)
        if len(parts) > 1 and log.isEnabledFor(logging.DEBUG):
            found = [text[a:b] for a, b in guard.literal_spans(text)]
            log.debug("special-token text in a message, tokenized as plain text: %s",
                      ", ".join(repr(f) for f in dict.fromkeys(found)))
        bos = self.model.bos
        tokens = [bos] if add_bos and bos >= 0 else []
        for piece, special in parts:
            tokens += self.model.tokenize(piece, add_bos=False, special=special)
        return tokens

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
        self._forget_undone()
        return True

    def _forget_undone(self) -> None:
        """Drop from the KV cache what the history no longer holds, so context_used (which
        /context, the TUI's panel and the REPL's status line all read) says what the next
        turn starts from, not what the undone exchange left behind."""
        try:
            history = self.history_prefix()
        except Exception:  # only a figure: the next turn fits the cache anyway
            log.debug("could not find the history's tokens after /undo", exc_info=True)
            return
        n = common_prefix(self.loop.cached, history[1] if history else [])
        if n < len(self.loop.cached):
            self.model.kv_truncate(n)
            del self.loop.cached[n:]
            self._cached_text, self._cached_n = "", 0

    def clear(self) -> None:
        """Forget the history and the KV cache; keep the system prompt."""
        self.conversation.clear()
        self.loop.reset()
        self._cached_text, self._cached_n = "", 0
        self.last_stats = None

    def set_system(self, text: str) -> None:
        self.conversation.system = text

    def switch_model(self, new_model: TokenModel, formatter: templates.Formatter | None = None,
                     settings: ModelSettings | None = None) -> Iterator[Event]:
        """Go on with `new_model` (another quantization, another KV cache type; loaded with
        `settings`), keeping the conversation: the old model is closed and prefill() reads
        the history into the new one, yielding Progress("history", done, total). cancel()
        stops only that reading; the next turn reads the rest."""
        with self._guard() as ok:
            if not ok:
                yield Error("a reply is being generated; stop it first")
                return
            old = self.model
            self.model, self.loop = new_model, TokenLoop(new_model)
            self.loop.speculation = self.speculation
            if formatter is not None:
                self.formatter = formatter
            if settings is not None:
                self.model_settings = settings
            self.markers = self._detect_markers()
            self.stops, self.hidden = self._derive_stops()
            self.specials = self._vocab_specials()
            self._cached_text, self._cached_n = "", 0
            if old is not new_model:
                old.close()
        yield from self.prefill()

    # ------------------------------------------------------------ resuming a stored conversation

    def restore(self, system: str, messages: list[Message], *,
                saved: tuple[list[int], bytes] | None = None) -> int:
        """Take over a stored conversation. `saved` is (tokens, state) from kv_snapshot() of
        an earlier session on the same model file and settings (the caller checks that):
        the longest start of the history's tokens that it holds goes back into the KV cache
        as it is, and loop.cached says exactly which tokens those are. Returns how many
        tokens that restored; prefill() reads the rest (or the next turn does)."""
        with self._guard() as ok:
            if not ok:
                raise LcchatError("wait for the reply to finish (Ctrl+C stops it)")
            conv = self.conversation
            conv.system = system
            conv.messages[:] = [Message(m.role, m.content, m.interrupted, m.reasoning) for m in messages]
            conv.window_start = 0
            self.loop.reset()
            self._cached_text, self._cached_n = "", 0
            history = self.history_prefix() if saved is not None else None
            if history is None or saved is None:
                return 0
            text, tokens = history
            held, state = saved
            n = common_prefix(held, tokens)
            if n == 0 or not self.model.load_state(state):
                self.loop.reset()
                return 0
            self.model.kv_truncate(n)
            self.loop.cached = list(tokens[:n])
            if n == len(tokens):
                self._cached_text, self._cached_n = text, n
            return n

    def prefill(self, cancel: threading.Event | None = None) -> Iterator[Event]:
        """Read the history into the KV cache now, so the next message evaluates only
        itself; yields Progress("history", done, total). Stopping early (cancel(), or
        setting `cancel`) is harmless: the next turn reads what is missing."""
        with self._guard() as ok:
            if not ok:
                yield Error("a reply is already being generated")
                return
            history = self.history_prefix()
            if history is None:
                return
            text, tokens = history
            loop = self.loop
            loop.cancel_event.clear()
            self.model.abort_requested = False
            try:
                yield from loop.feed(tokens, "history", stop=cancel)
            except DecodeError:
                yield Notice("could not read the whole history into the context now; the next message will", "warning")
            if len(loop.cached) == len(tokens):
                self._cached_text, self._cached_n = text, len(tokens)

    def history_prefix(self) -> tuple[str, list[int]] | None:
        """The prompt text every next turn starts with (the history, fitted to the context
        by the overflow policy, up to where the next user message goes) and its tokens.
        None with no history, or when it cannot be found (a template that rewrites
        messages, a history too long for the 'error' policy)."""
        conv = self.conversation
        if not conv.messages:
            return None
        probe = Conversation(conv.system, [*conv.messages, Message("user", _PROBE)], conv.window_start)
        try:
            prompt = self._build_prompt(probe, self._tokenize_whole)
        except LcchatError:
            return None
        cut = prompt.text.rfind(_PROBE)
        if cut <= 0 or prompt.cut:
            return None
        conv.window_start = probe.window_start
        text = guard.PromptText.of(prompt.text, guard.literal_spans(prompt.text)).head(cut)
        return text, self._tokenize_whole(text)

    def kv_snapshot(self) -> tuple[list[int], bytes] | None:
        """(tokens, state): the tokens in the KV cache and llama.cpp's state holding them,
        for restore(saved=) in a later session. None when the model is closed or holds
        nothing. Call it between turns."""
        if not self.loop.cached or not self.model.is_loaded():
            return None
        tokens = list(self.loop.cached)
        return tokens, self.model.save_state()

    def close(self) -> None:
        """End the session: the on_close hooks run (the store keeps the KV state for a fast
        resume), then the model is freed. Front-ends call this rather than model.close()."""
        hooks, self.on_close = list(self.on_close), []
        for hook in hooks:
            try:
                hook(self)
            except Exception:  # closing must finish
                log.warning("a close hook failed", exc_info=True)
        self.speculation.close()
        self.model.close()

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


def _reply_source(model, profile: Profile):
    """The token loop for a model in this process; a remote model brings its own source."""
    if not isinstance(model, ServedModel):
        return TokenLoop(model)
    source = model.reply_source()
    source.chat_settings, source.profile_stops = profile.chat, list(profile.chat.stop)
    return source


def _clean(text: str) -> str:
    """Text safe to tokenize: lone surrogates (from undecodable input) and NULs replaced."""
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    return text.replace("\x00", "\ufffd")


# ---------------------------------------------------------------- opening a session

def open_session(profile: Profile, *, on_progress: Callable[[float], None] | None = None,
                 cancel: threading.Event | None = None) -> ChatSession:
    """Open the profile's model (engine/loading.py: file checks, load, chat format,
    notices), or connect to its server ([backend] url: engine/remote.py), and its draft
    model ([speculative] draft): a ready session. on_progress gets the load's fraction.
    What else a run needs (the recorder, the signal handling) the composition root,
    lcchat/runtime.py, attaches after."""
    if profile.backend.url:
        from lcchat.engine.remote import open_remote

        model, formatter, notices = open_remote(profile)
        session = ChatSession(model=model, profile=profile, formatter=formatter,
                              notices=[Notice(text, "warning") for text in notices])
    else:
        from lcchat.engine import loading

        loaded = loading.load(profile, on_progress=on_progress, cancel=cancel)
        session = ChatSession(model=loaded.model, profile=profile, formatter=loaded.formatter,
                              notices=loaded.notices, model_settings=loaded.settings)
    try:
        session.speculation.draft_model = _open_draft(session, cancel)
    except BaseException:
        session.speculation.close()
        session.model.close()
        raise
    return session


def _open_draft(session: ChatSession, cancel: threading.Event | None) -> speculative.ModelDrafter | None:
    """The draft model of [speculative] draft, opened the one way a model is
    (engine/loading.py) with the model's settings, once its vocabulary is checked to be the
    model's (llama.cpp's rule); None when the profile names none."""
    from lcchat.config.loader import resolve_draft_path
    from lcchat.engine import loading
    from lcchat.errors import InputError

    profile, model = session.profile, session.model
    path = resolve_draft_path(profile)
    if path is not None and isinstance(model, ServedModel):
        raise InputError("a draft model needs a local model to draft for; this profile uses a server "
                         "([backend] url): remove [speculative] draft")
    if path is None:
        if profile.speculative.mode == "draft":
            raise InputError("[speculative] mode = draft needs a draft model: set [speculative] draft = PATH "
                             "or give --draft PATH")
        return None
    settings = dataclasses.replace(session.model_settings, n_ctx=model.n_ctx)
    loaded = loading.load(profile, settings, path=path, formatter=session.formatter, cancel=cancel)
    problem = speculative.vocab_mismatch(model, loaded.model)
    if problem:
        loaded.model.close()
        raise InputError(f"{path}: cannot be the draft model of {model.path.name}: {problem}; "
                         "a draft model must have the same vocabulary")
    session.notices += loaded.notices
    return speculative.ModelDrafter(loaded.model)
