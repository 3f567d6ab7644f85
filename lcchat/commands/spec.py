"""/spec: see or switch speculative decoding (engine/speculative.py) for the next turns."""

from __future__ import annotations

from lcchat.commands.registry import Context, Result, UsageError, registry
from lcchat.config.schema import SPEC_MODES

DETAILS = """/spec          the mode, the draft model and the last reply's acceptance
/spec MODE     off, lookup (n-grams of the conversation), draft (the draft model),
               auto (lookup, else the draft model); from the next reply on.
The reply is unchanged by it: identical when greedy, the same distribution otherwise."""


@registry.command("spec", args="[off|lookup|draft|auto]", help="speculative decoding: show or switch the mode",
                  complete=lambda ctx, arg: [m for m in SPEC_MODES if m.startswith(arg)], details=DETAILS)
def cmd_spec(ctx: Context, arg: str) -> Result:
    spec = ctx.session.speculation
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
    return Result(f"Speculative decoding: {arg}, from the next reply on.")
