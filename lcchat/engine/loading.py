"""The one way a model is opened: file checks, the load, the chat template, the notices.

A session opens its model here (`open_session`), and /quant switches the model here too
(another quantization, another KV cache type), so a switched model gets exactly what an
opened one gets: the memory check, the settings this machine had to change, RoPE's
warnings, the template chosen (`templates.choose`) and then renamed for the vocab
(`templates.adapt_to_vocab`, older InternLM2 conversions). The stop strings follow from
the formatter and the model (engine/stops.py), which the session derives itself.

`steps()` is the loader as events, for a caller that shows them as they come (a switch
mid-chat): Notice("will not fit") before the load starts, Progress("load", %, 100)
while it runs, the other notices, then the `Loaded`. `load()` runs the same steps for
a caller that wants only the result (opening a session), reporting the load's progress
to a callback.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from lcchat.config.schema import ChatSettings, ModelSettings, Profile
from lcchat.engine import gguf_info, templates
from lcchat.engine.events import Notice, Progress
from lcchat.errors import InputError

if TYPE_CHECKING:
    from lcchat.engine.model import Model

log = logging.getLogger("lcchat.session")


@dataclass
class Loaded:
    """A model ready for a session: what to hand to ChatSession (or switch_model)."""

    model: Model
    formatter: templates.Formatter
    settings: ModelSettings  # the settings it was loaded with: the session's from now on
    info: gguf_info.GGUFInfo
    notices: list[Notice] = field(default_factory=list)  # every notice, in order (steps() yielded them too)


def choose_formatter(chat: ChatSettings, info: gguf_info.GGUFInfo, *, bos_text: str, eos_text: str,
                     notices: list[str], adapt: bool = True) -> templates.Formatter:
    """The formatter a session uses for this file and profile: `templates.choose`, then the
    chat markers renamed to this vocab's names for them (adapt=False: as the template
    writes them, which is what `lcchat doctor` checks against the vocab)."""
    formatter = templates.choose(profile_template=chat.template, profile_format=chat.format,
                                 gguf_template=info.chat_template, bos_token=bos_text, eos_token=eos_text,
                                 notices=notices)
    if adapt and info.tokens:
        formatter = templates.adapt_to_vocab(formatter, set(info.tokens), notices)
    return formatter


def steps(profile: Profile, settings: ModelSettings | None = None, *, path: Path | None = None,
          formatter: templates.Formatter | None = None,
          cancel: threading.Event | None = None) -> Iterator[Notice | Progress | Loaded]:
    """Open the model `settings` name (the profile's by default; `path` when it is already
    known), yielding Notices and Progress("load", percent, 100); the last item is the
    Loaded. `formatter` keeps a formatter already chosen for this same file (a KV cache
    change) instead of choosing again. Raises InputError for settings llama.cpp would
    refuse, ModelFileError for a bad file, Cancelled when `cancel` is set during the load.
    Closing the generator early stops the load and frees what it loaded."""
    from lcchat.config.loader import resolve_model_path
    from lcchat.engine.quant.memory import fit_warning, kv_cache_problem

    settings = settings or profile.model
    path = Path(path) if path is not None else resolve_model_path(dataclasses.replace(profile, model=settings))
    info = gguf_info.load_checked(path)
    problem = kv_cache_problem(settings, info)
    if problem:
        raise InputError(problem)
    said: list[Notice] = []
    fit = fit_warning(info, settings)
    if fit:
        log.warning("%s", fit)
        said.append(Notice(fit, "warning"))
        yield said[-1]
    model: Model | None = None
    handed_over = False
    loader = _load_in_thread(path, settings, profile, info, cancel or threading.Event())
    try:
        for item in loader:
            if isinstance(item, Progress):
                yield item
            else:
                model = item
        assert model is not None
        texts = list(model.load.notices) + list(model.load.rope.warnings)
        if formatter is None:
            formatter = choose_formatter(profile.chat, info, bos_text=model.bos_text, eos_text=model.eos_text,
                                         notices=texts)
        for text in texts:
            said.append(Notice(text, "warning"))
            yield said[-1]
        handed_over = True
        yield Loaded(model, formatter, settings, info, said)
    finally:
        loader.close()  # a load still running is cancelled and freed
        if model is not None and not handed_over:
            model.close()


def load(profile: Profile, settings: ModelSettings | None = None, *, path: Path | None = None,
         formatter: templates.Formatter | None = None, on_progress: Callable[[float], None] | None = None,
         cancel: threading.Event | None = None) -> Loaded:
    """steps() for a caller that wants the result: on_progress gets the load's fraction;
    the notices are in Loaded.notices."""
    for item in steps(profile, settings, path=path, formatter=formatter, cancel=cancel):
        if isinstance(item, Loaded):
            return item
        if isinstance(item, Progress) and on_progress is not None:
            on_progress(item.done / item.total)
    raise AssertionError("steps() ends with a Loaded")  # pragma: no cover


def _load_in_thread(path: Path, settings: ModelSettings, profile: Profile, info: gguf_info.GGUFInfo,
                    cancel: threading.Event) -> Iterator[Progress | Model]:
    """Load a Model in a helper thread, yielding Progress("load", percent, 100) while it
    loads; the last item is the Model itself. Raises what loading raised. Closing this
    generator early cancels the load and frees the model."""
    from lcchat.engine.model import Model

    box: dict[str, Any] = {}
    fractions: queue.SimpleQueue = queue.SimpleQueue()

    if settings.flash_attn == "auto" and profile.speculative.mode != "off":
        # a batch verified with flash attention off rounds differently from one token at a
        # time, so a greedy reply could change; with it on they are equal (engine/model.py)
        settings = dataclasses.replace(settings, flash_attn=True)

    def work() -> None:
        try:
            box["model"] = Model(path, settings, profile.rope, seed=profile.sampling.seed,
                                 on_progress=fractions.put, cancel=cancel, info=info)
        except BaseException as exc:  # noqa: BLE001 - handed to the iterating thread
            box["error"] = exc

    thread = threading.Thread(target=work, name="lcchat-load", daemon=True)
    thread.start()
    last = -1
    try:
        while thread.is_alive() or not fractions.empty():
            try:
                fraction = fractions.get(timeout=0.05)
            except queue.Empty:
                continue
            percent = int(fraction * 100)
            if percent != last:
                last = percent
                yield Progress("load", percent, 100)
    finally:
        if thread.is_alive():  # the caller stopped listening: stop the load too
            cancel.set()
            thread.join()
            model = box.get("model")
            if model is not None:
                model.close()
    thread.join()
    if "error" in box:
        raise box["error"]
    yield box["model"]
