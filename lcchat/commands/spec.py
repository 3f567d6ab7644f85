"""/spec: see or switch speculative decoding (engine/speculative.py) for the next turns."""

from __future__ import annotations

from dataclasses import fields

from lcchat.commands.registry import Context, Result, UsageError, registry
from lcchat.config.schema import SPEC_MODES, SpeculativeSettings

DETAILS = """/spec          the mode, the draft model and the last reply's acceptance
/spec MODE     off, lookup (n-grams of the conversation), draft (the draft model),
               auto (lookup, else the draft model); from the next reply on.
/spec N        the most tokens drafted at a time (1-64, [speculative] n_draft);
               the length adapts below it. /spec lookup 4 sets both.
The reply is unchanged by it: identical when greedy, the same distribution otherwise."""

N_DRAFT_MAX = next(f for f in fields(SpeculativeSettings) if f.name == "n_draft").metadata["max"]


@registry.command("spec", args="[off|lookup|draft|auto] [N]", help="speculative decoding: show or switch the mode",
                  complete=lambda ctx, arg: [m for m in SPEC_MODES if m.startswith(arg)], details=DETAILS)
def cmd_spec(ctx: Context, arg: str) -> Result:
    spec = ctx.session.speculation
    words = arg.split()
    n_draft = None
    if words and words[-1].isdigit():
        n_draft = int(words.pop())
        if not 1 <= n_draft <= N_DRAFT_MAX:
            raise UsageError(f"Draft length {n_draft} is out of range: give 1 to {N_DRAFT_MAX}.")
    if len(words) > 1:
        raise UsageError(f"Too many words: {arg!r}.")
    arg = words[0] if words else ""
    if n_draft is not None and not arg:
        spec.n_draft = n_draft
        return Result(f"Speculative decoding drafts at most {n_draft} tokens at a time, from the next reply on.")
    if not arg:
        draft = spec.draft_model
        stats = ctx.session.last_stats
        rows = [("mode", spec.mode), ("n_draft", str(spec.n_draft)),
                ("draft model", draft.model.path.name if draft is not None else "none ([speculative] draft or --draft)")]
        if stats is not None and stats.decodes:
            rows.append(("last reply", stats.spec_text))
        return Result("Speculative decoding:", rows=rows)
    if arg not in SPEC_MODES:
        raise UsageError(f"Unknown mode {arg!r}.")
    if arg == "draft" and spec.draft_model is None:
        return Result("No draft model is loaded: set [speculative] draft = PATH in the profile or start with "
                      "--draft FILE.", error=True)
    spec.mode = arg
    if n_draft is not None:
        spec.n_draft = n_draft
    text = f"Speculative decoding: {arg}" + (f", at most {n_draft} tokens drafted at a time" if n_draft else "") \
        + ", from the next reply on."
    if arg != "off" and not flash_attn_on(ctx.session):
        text += (" Flash attention is off in this model's context, so a greedy reply may differ from one "
                 "without speculation where two tokens nearly tie; start with --spec or --flash-attn on "
                 "for identical replies.")
    return Result(text)


def flash_attn_on(session) -> bool:
    """Whether the loaded model verifies drafts with flash attention (engine/loading.py turns
    "auto" on when the session starts with speculative decoding)."""
    from lcchat.engine.model import flash_attn_choice

    settings = session.model_settings
    if settings.flash_attn == "auto" and session.profile.speculative.mode != "off":
        return True
    return flash_attn_choice(settings) is not False
