"""Which texts end a reply and which are hidden from it: one pure function.

The session derives its stops from this on every model or template change; `lcchat
doctor` calls the same function on a GGUF's vocab without loading the model, so the
stops it reports are the ones a chat would use.
"""

from __future__ import annotations

from typing import Sequence

from lcchat.engine import templates
from lcchat.engine.protocol import StopVocab

# A short conversation whose rendering shows which control tokens a template uses as turn markers.
_SAMPLE = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
           {"role": "assistant", "content": "a"}, {"role": "user", "content": "v"}]


def derive(formatter: templates.Formatter, vocab: StopVocab, configured: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """(stops, hidden). Stops: `configured` (the profile's [chat] stop, then any a front-end
    added), the format's, the vocab's EOS/EOT, and every control token the template writes
    as a turn marker (BOS excepted). Hidden: the other control tokens, removed from a reply
    if the model writes them as text."""
    stops = [*configured, *formatter.stop, *vocab.eog_texts()]
    controls = vocab.control_texts()
    try:
        sample = formatter.render(_SAMPLE)
    except templates.TemplateError:
        sample = ""
    stops += [c for c in controls if c in sample and c != vocab.bos_text]
    hidden = [c for c in controls if c not in stops]
    return list(dict.fromkeys(s for s in stops if s)), hidden
