"""/quant: see the model's quantization, switch to a sibling, make a new one, change the
KV cache type. The work lives in engine/quant/ (the report's text in quant_report.py); this
only parses and returns Results.

Long work (switching, making, reloading the KV cache) comes back as a Task action whose
iterator yields Progress and Notice events and ends with Done. It stops on the front-end's
usual session.cancel(): the iterators watch session.loop.cancel_event, which cancel() sets
(a quantization's child process is then killed and its temporary file removed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from lcchat.commands.actions import Task
from lcchat.commands.registry import Context, Result, UsageError, registry
from lcchat.config.schema import KV_CACHE_TYPES
from lcchat.engine.events import Done, Error, Event, Notice
from lcchat.engine.protocol import ServedModel

DETAILS = """/quant                 what the model is: file type, tensor types, bits per weight, size,
                       llama.cpp's type table scaled to it, other quantizations beside it,
                       and the memory it needs
/quant TYPE            switch to another quantization of this model (e.g. /quant Q5_K_M);
                       the conversation is kept and read again
/quant make TYPE       quantize this model's file to TYPE, beside it (--allow-requantize to
                       quantize an already quantized file, --force to replace an existing one)
/quant kv TYPE [VTYPE] reload the context with a KV cache of TYPE (f16, q8_0, q4_0 ...);
                       a quantized V cache turns flash attention on
Ctrl+C (Esc in the TUI) stops a switch or a quantization; nothing half-written is left."""


def _model_path(ctx: Context) -> Path:
    return Path(str(ctx.session.model.path))


def _info(ctx: Context):
    from lcchat.engine import gguf_info

    info = ctx.session.model.info
    return info if info is not None else gguf_info.load_checked(_model_path(ctx), vocab=False)


def _variants(ctx: Context, *, read_headers: bool = True):
    from lcchat.engine import quant

    profile = ctx.session.profile
    relative = profile.source.parent if profile.source else None
    return quant.find_variants(_model_path(ctx), profile.model.variants, relative_to=relative,
                               read_headers=read_headers)


def _complete(ctx: Context, arg: str) -> list[str]:
    from lcchat.engine import quant

    words = arg.split(" ")
    if len(words) <= 1:
        try:
            types = [v.type_name for v in _variants(ctx, read_headers=False) if v.type_name and not v.current]
        except Exception:  # noqa: BLE001 - completion must not fail
            types = []
        return ["make", "kv", *dict.fromkeys(types)]
    if words[0] == "make":
        return [t.name for t in quant.TABLE] + ["--allow-requantize", "--force"]
    if words[0] == "kv":
        return list(KV_CACHE_TYPES)
    return []


@registry.command("quant", args="[TYPE | make TYPE | kv TYPE]", complete=_complete, details=DETAILS,
                  help="see, switch and make quantizations; will the model fit; KV cache type")
def cmd_quant(ctx: Context, arg: str) -> Result:
    from lcchat.errors import LcchatError

    words = arg.split()
    model = ctx.session.model
    if isinstance(model, ServedModel):  # a model on a server (engine/remote.py)
        if not words:
            return Result("\n".join(model.report()))
        return Result("The model runs on the server, which chose its quantization and KV cache: "
                      "/quant can only show what the server reports. Load another quantization "
                      "or cache type where the server starts.", error=True)
    try:
        if not words:
            return _show(ctx)
        if ctx.session.busy:
            return Result("Wait for the reply to finish (Ctrl+C stops it).", error=True)
        if words[0] == "make":
            return _make(ctx, words[1:])
        if words[0] == "kv":
            return _kv(ctx, words[1:])
        if len(words) != 1:
            raise UsageError("Give one type or file name.")
        return _switch(ctx, words[0])
    except LcchatError as exc:
        return Result(str(exc), error=True)


def _show(ctx: Context) -> Result:
    from lcchat.engine import quant

    session = ctx.session
    profile = session.profile
    relative = profile.source.parent if profile.source else None
    report = quant.inspect(_model_path(ctx), session.model_settings, n_ctx=int(session.model.n_ctx),
                           variants_glob=profile.model.variants, relative_to=relative,
                           info=_info(ctx), loaded=True)
    from lcchat.commands.quant_report import format_report

    return Result(format_report(report))


def _switch(ctx: Context, wanted: str) -> Result:
    from lcchat.engine import quant

    variants = _variants(ctx)
    variant = quant.pick_variant(variants, wanted)
    if variant is None:
        have = ", ".join(f"{v.type_name} ({v.path.name})" for v in variants if not v.current and v.type_name)
        tip = f" Available: {have}." if have else " There are no other quantizations beside it."
        return Result(f"No {wanted} variant of this model was found.{tip} /quant make {wanted.upper()} makes one.",
                      error=True)
    if variant.current:
        return Result(f"{variant.path.name} ({variant.type_name}) is the model in use.")
    session = ctx.session
    return Result(action=Task(lambda: quant.switch_variant(session, variant), "switch"))


def _make(ctx: Context, words: list[str]) -> Result:
    from lcchat.engine import quant

    flags = {w for w in words if w.startswith("--")}
    unknown = flags - {"--allow-requantize", "--force"}
    if unknown:
        raise UsageError(f"Unknown option {sorted(unknown)[0]}.")
    names = [w for w in words if not w.startswith("--")]
    if len(names) != 1:
        raise UsageError("Name one type, e.g. /quant make Q4_K_M.")
    plan = quant.plan_quantize(_model_path(ctx), names[0], allow_requantize="--allow-requantize" in flags,
                               force="--force" in flags, info=_info(ctx))
    session = ctx.session
    return Result(action=Task(lambda: _run_make(session, plan), "quantize"))


def _run_make(session, plan) -> Iterator[Event]:
    from lcchat.engine import quant
    from lcchat.engine.model import Cancelled
    from lcchat.errors import LcchatError

    cancel = session.loop.cancel_event
    cancel.clear()
    try:
        yield from quant.run_quantize(plan, cancel=cancel)
    except Cancelled as exc:
        yield Notice(str(exc), "warning")
        yield Done("interrupted", "")
        return
    except LcchatError as exc:
        yield Error(str(exc), exc.exit_code)
        yield Done("error", "")
        return
    yield Notice(f"/quant {plan.target} switches to it")
    yield Done("stop", "")


def _kv(ctx: Context, words: list[str]) -> Result:
    from lcchat.engine import quant
    from lcchat.engine.monitor import human_bytes

    session = ctx.session
    settings = session.model_settings
    if not words:
        info = _info(ctx)
        n_ctx = int(session.model.n_ctx)
        rows = [(t, human_bytes(quant.kv_cache_bytes(info, n_ctx, t, t))) for t in ("f16", "q8_0", "q4_0")]
        return Result(f"KV cache: {settings.cache_type_k}/{settings.cache_type_v} at n_ctx {n_ctx} "
                      f"({human_bytes(quant.kv_cache_bytes(info, n_ctx, settings.cache_type_k, settings.cache_type_v))}). "
                      "/quant kv TYPE [VTYPE] changes it; sizes with K and V of one type:", rows=rows)
    if len(words) > 2:
        raise UsageError("Give one type, or a K type and a V type.")
    type_k = words[0].lower()
    type_v = (words[1] if len(words) == 2 else words[0]).lower()
    for name in (type_k, type_v):
        if name not in KV_CACHE_TYPES:
            raise UsageError(f"Unknown KV cache type {name!r}; choose one of {', '.join(KV_CACHE_TYPES)}.")
    if (type_k, type_v) == (settings.cache_type_k, settings.cache_type_v):
        return Result(f"The KV cache is already {type_k}/{type_v}.")
    return Result(action=Task(lambda: quant.switch_kv(session, type_k, type_v), "kv"))
