"""Speculative decoding (engine/speculative.py) on real llama.cpp.

The scripted models of tests/models.py make prompt lookup predictable: a looping script
repeats its pieces, so after one round every n-gram has been seen and the drafts are
right. In those tests drafting never pauses (adaptive = False), so each stop condition
is sure to land while drafted tokens wait in the KV cache. That it landed mid-draft shows
in the stats: a draft of a script is always right, so drafted tokens that were never
accepted were cut off by the stop. After every stop the KV cache holds exactly the
tokens the loop kept, or the next turn's prefix reuse would be wrong.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

from lcchat.config.loader import load_profile
from lcchat.engine import speculative
from lcchat.engine.events import Done, Notice, Stats, Token
from lcchat.engine.fake import FakeModel, fake_session
from lcchat.engine.session import open_session
from lcchat.errors import InputError
from tests import models
from tests.test_cli import one_line_error
from tests.test_cli import run as run_cli


def open_on(path, **overrides):
    values = {"model.path": str(path), "model.n_ctx": 256, "sampling.max_tokens": 64,
              "sampling.temperature": 0.0, "sampling.seed": 1, **overrides}
    session = open_session(load_profile("default", values))
    session.speculation.adaptive = False
    return session


def turn(session, mode: str, message: str = "hello", *, cancel_mid_draft: bool = False):
    """One reply with speculation `mode`: (text, finish_reason, final Stats, events)."""
    session.speculation.mode = mode
    events = []
    for event in session.send(message):
        events.append(event)
        if cancel_mid_draft and isinstance(event, Token) and drafted_ahead(session) >= 2:
            session.cancel()
            cancel_mid_draft = False
    done = events[-1]
    assert isinstance(done, Done)
    stats = [e for e in events if isinstance(e, Stats) and e.final][-1]
    return "".join(e.text for e in events if isinstance(e, Token)), done.finish_reason, stats, events


def kv_positions(session) -> int:
    """How many positions llama.cpp's KV cache holds for the conversation."""
    model = session.model
    return model._llama.llama_memory_seq_pos_max(model._memory, 0) + 1


def drafted_ahead(session) -> int:
    """Positions in the KV cache beyond what the loop has kept: a draft being verified."""
    return kv_positions(session) - len(session.loop.cached)


def same_reply_with_and_without(session, mode: str, message: str = "hello"):
    session.clear()
    plain = turn(session, "off", message)
    session.clear()
    spec = turn(session, mode, message)
    assert spec[:2] == plain[:2]
    assert kv_positions(session) == len(session.loop.cached) == plain[2].context_used
    return plain, spec


@pytest.fixture(scope="module")
def looping(tmp_path_factory):
    path = models.write_scripted_model(tmp_path_factory.mktemp("spec") / "loop.gguf",
                                       ["ab1", "cd2", "ef3"], loop=True)
    session = open_on(path, **{"sampling.max_tokens": 120})
    yield session
    session.close()


def test_a_stop_string_inside_a_draft_ends_the_reply_there(looping) -> None:
    # The stop string first ends with token 6, which the batch verified at token 5 drafted.
    looping.set_stops(["ef3ab1cd2ef3"])
    try:
        _, (text, reason, stats, _) = same_reply_with_and_without(looping, "lookup")
    finally:
        looping.set_stops([])
    assert (text, reason) == ("ab1cd2", "stop")
    assert stats.drafted > stats.accepted


def test_max_tokens_inside_a_draft(looping) -> None:
    looping.sampling.max_tokens = 11
    try:
        _, (text, reason, stats, events) = same_reply_with_and_without(looping, "lookup", "hi")
    finally:
        looping.sampling.max_tokens = 120
    assert reason == "length" and stats.completion_tokens == 11 and text.startswith("ab1cd2ef3ab1")
    assert stats.drafted and stats.decodes < stats.completion_tokens  # the last ones came in one batch
    assert any(isinstance(e, Notice) and "max_tokens (11)" in e.text for e in events)


def test_ctrl_c_inside_a_draft_keeps_the_cache_as_the_reply(looping) -> None:
    looping.clear()
    text, reason, stats, _ = turn(looping, "lookup", "go on", cancel_mid_draft=True)
    assert reason == "interrupted" and "ab1cd2ef3ab1cd2ef3ab1cd2ef3"[:len(text)] == text
    assert stats.drafted > stats.accepted
    assert kv_positions(looping) == len(looping.loop.cached)
    # The next turn reuses that cache as its prefix and answers as ever.
    looping.sampling.max_tokens = 7
    try:
        again = turn(looping, "lookup", "hello")
    finally:
        looping.sampling.max_tokens = 120
    assert again[:2] == ("ab1cd2ef3ab1cd2ef3ab1", "length")
    assert kv_positions(looping) == len(looping.loop.cached)


def test_the_end_of_the_context_inside_a_draft(tmp_path) -> None:
    path = models.write_scripted_model(tmp_path / "ctx.gguf", ["ab1", "cd2", "ef3"], loop=True)
    session = open_on(path, **{"model.n_ctx": 64, "sampling.max_tokens": -1, "context.reserve": 0})
    try:
        _, (_, reason, stats, events) = same_reply_with_and_without(session, "lookup")
    finally:
        session.close()
    assert reason == "length" and stats.context_used == session.model.n_ctx - 1
    assert stats.drafted and stats.decodes < stats.completion_tokens
    assert any(isinstance(e, Notice) and "end of the context window" in e.text for e in events)


def test_eos_inside_a_draft(tmp_path) -> None:
    # The second turn drafts from the first reply, whose continuation in the context is the
    # end-of-turn token: the model ends the reply on a drafted position.
    path = models.write_scripted_model(tmp_path / "eos.gguf", "alpha beta gamma delta epsilon zeta")
    session = open_on(path)
    try:
        for mode in ("off", "lookup"):
            session.clear()
            first = turn(session, mode)
            second = turn(session, mode)
            assert first[:2] == second[:2] == ("alpha beta gamma delta epsilon zeta", "stop")
            assert kv_positions(session) == len(session.loop.cached)
        assert second[2].drafted > second[2].accepted > 0
    finally:
        session.close()


def test_a_draft_model_of_the_same_vocabulary_drafts(tmp_path) -> None:
    path = models.write_scripted_model(tmp_path / "d.gguf", ["ab1", "cd2", "ef3"], loop=True)
    session = open_on(path, **{"speculative.draft": str(path), "sampling.max_tokens": 30})
    try:
        _, (_, _, stats, _) = same_reply_with_and_without(session, "draft")
        assert stats.accepted == stats.drafted > 20 and stats.decodes < 10
        _, auto = same_reply_with_and_without(session, "auto")
        assert auto[2].accepted > 10
    finally:
        session.close()


def test_the_draft_model_gets_the_models_context_and_no_notices_of_its_own_format(tmp_path) -> None:
    """The draft drafts for the model's conversation, so it is opened with the model's
    context (here the model file's 512 with n_ctx = 0, where the draft file's would be
    1024) and the model's chat format: a file without a template is said once, not again
    for its draft."""
    main = models.write_tiny_model(tmp_path / "main.gguf", chat_template=None, n_ctx_train=512)
    draft = models.write_tiny_model(tmp_path / "draft.gguf", chat_template=None, n_ctx_train=1024)
    session = open_on(main, **{"model.n_ctx": 0, "speculative.draft": str(draft)})
    try:
        assert session.model.n_ctx == 512
        assert session.speculation.draft_model.model.n_ctx == 512
        texts = [n.text for n in session.notices]
        assert texts and len(texts) == len(set(texts)), texts
    finally:
        session.close()


# ---------------------------------------------------------------- the draft model's vocabulary


def test_a_draft_model_with_another_vocabulary_is_refused_with_one_line(tmp_path, tiny_model) -> None:
    scripted = models.write_scripted_model(tmp_path / "s.gguf", "a reply")
    with pytest.raises(InputError, match="cannot be the draft model.*tokens.*; a draft model must have the same "
                                         "vocabulary$"):
        open_on(tiny_model, **{"speculative.draft": str(scripted)})
    r = run_cli(["-m", str(tiny_model), "--draft", str(scripted), "--spec", "draft", "-n", "4", "hi"])
    line = one_line_error(r, 2)
    assert "cannot be the draft model" in line and "vocabulary" in line


def test_a_draft_model_whose_token_texts_differ_is_refused(tmp_path) -> None:
    one = models.write_scripted_model(tmp_path / "one.gguf", ["ab1", "cd2"])
    two = models.write_scripted_model(tmp_path / "two.gguf", ["ab1", "xy2"])  # same size, one text differs
    with pytest.raises(InputError, match="token \\d+ differs"):
        open_on(one, **{"speculative.draft": str(two)})


def test_mode_draft_without_a_draft_model_is_bad_input(tiny_model) -> None:
    with pytest.raises(InputError) as info:
        open_on(tiny_model, **{"speculative.mode": "draft"})
    assert str(info.value) == ("[speculative] mode = draft needs a draft model: set [speculative] draft = PATH "
                               "or give --draft PATH")


# ---------------------------------------------------------------- the distribution at a temperature


def chi_square_p(a: Counter, b: Counter, top: int = 4) -> float:
    """p-value of a chi-square test that two samples come from one distribution, over the
    `top` commonest outcomes and the rest together (df = top, even: closed form)."""
    keys = [k for k, _ in (a + b).most_common(top)]
    rows = [[c[k] for k in keys] + [sum(c.values()) - sum(c[k] for k in keys)] for c in (a, b)]
    total = sum(map(sum, rows))
    stat = 0.0
    for j in range(len(rows[0])):
        col = rows[0][j] + rows[1][j]
        for row in rows:
            expected = sum(row) * col / total
            if expected:
                stat += (row[j] - expected) ** 2 / expected
    df = len(rows[0]) - 1
    assert df % 2 == 0
    half = stat / 2
    return math.exp(-half) * sum(half ** i / math.factorial(i) for i in range(df // 2))


@pytest.mark.slow
def test_at_temperature_0_8_the_tokens_keep_their_distribution(tmp_path) -> None:
    # Random weights, scaled up so the next token is neither certain nor uniform; the model
    # drafts for itself (greedily), so its drafts are often but not always what is drawn.
    path = models.write_tiny_model(tmp_path / "t.gguf", weight_scale=0.35, seed=3)
    session = open_on(path, **{"sampling.temperature": 0.8, "sampling.top_k": 0, "sampling.top_p": 1.0,
                               "sampling.min_p": 0.0, "sampling.max_tokens": 2, "speculative.draft": str(path)})
    runs = 300
    counts = {}
    try:
        for mode, seeds in (("off", range(runs)), ("draft", range(runs, 2 * runs))):
            first, second, drafted, accepted = Counter(), Counter(), 0, 0
            for seed in seeds:
                session.clear()
                session.sampling.seed = seed
                session.speculation.mode = mode
                list(session.send("the cat"))
                tokens = session.loop.cached[-2:]
                first[tokens[0]] += 1
                second[tuple(tokens)] += 1
                drafted, accepted = drafted + session.last_stats.drafted, accepted + session.last_stats.accepted
            counts[mode] = (first, second, drafted, accepted)
    finally:
        session.close()
    (f_off, s_off, _, _), (f_on, s_on, drafted, accepted) = counts["off"], counts["draft"]
    assert 0 < accepted < drafted  # verification ran, and both accepted and rejected drafts
    assert len(f_off) >= 3 and len(s_off) >= 10 and max(s_off.values()) < 0.5 * runs  # worth testing
    assert chi_square_p(f_off, f_on) > 0.001
    assert chi_square_p(s_off, s_on) > 0.001


# ---------------------------------------------------------------- when drafting does not pay


class SlowBatches(FakeModel):
    """A fake model on which a verified batch costs far more than single decodes."""

    def decode_batch(self, tokens, n_past):
        self.batches = getattr(self, "batches", 0) + 1
        import time

        time.sleep(0.02)
        return super().decode_batch(tokens, n_past)


def test_drafting_pauses_when_batches_cost_more_than_they_give() -> None:
    words = ["a1", "b2", "c3", "d4"] * 30
    model = SlowBatches(replies=[words])
    session = fake_session(model)
    session.speculation.mode = "lookup"
    events = list(session.send("hi"))
    stats = [e for e in events if isinstance(e, Stats) and e.final][-1]
    assert "".join(e.text for e in events if isinstance(e, Token)) == "".join(words)
    # Without pausing, every token after the first round would be drafted in batches.
    assert 0 < model.batches < 10 and stats.drafted < 40


def measured(planner, *, beta: float) -> None:
    """As if each verified batch so far had cost 1 + beta * drafted single decodes."""
    planner._betas.clear()
    planner._betas.extend([beta] * 3)


def test_the_planner_drafts_only_what_pays() -> None:
    planner = speculative.Planner(n_max=8)
    planner.single(0.030)
    good, poor = ["lookup8"] * 8, ["lookup2"] * 8
    # A source right 19 times in 20 on a model where each drafted token costs a third of a
    # decode: several tokens at a time.
    measured(planner, beta=0.33)
    planner.odds["lookup8"] = [19.0, 1.0]
    long_draft = planner.budget(good)
    assert long_draft >= 4
    # Verifying costs more (a compute-bound CPU): fewer.
    measured(planner, beta=0.6)
    assert 1 <= planner.budget(good) < long_draft
    # A source right one time in three: nothing beats single decodes.
    planner.odds["lookup2"] = [1.0, 2.0]
    assert planner.budget(poor) == 0
    # Free drafting on a memory-bound model (a large one, a GPU): even so-so sources pay.
    measured(planner, beta=0.05)
    assert planner.budget(poor) >= 1
    assert planner.budget(good) == 8  # and a good one drafts all it may
    assert planner.budget(["lookup8"] * 3) == 3  # never more than there is


def test_the_planner_weighs_each_drafted_token_by_its_own_source() -> None:
    """A lookup draft gets surer as it goes (each token it copies lengthens the match): a
    draft that starts on a short match and runs into a long one is worth drafting long,
    though its first token alone would not pay."""
    planner = speculative.Planner(n_max=8)
    planner.single(0.030)
    measured(planner, beta=0.1)
    planner.odds["lookup2"] = [0.15, 0.85]
    planner.odds["lookup8"] = [99.0, 1.0]
    assert planner.budget(["lookup2"] * 8) == 0
    assert planner.budget(["lookup2", "lookup8", "lookup8", "lookup8", "lookup8", "lookup8", "lookup8",
                           "lookup8"]) >= 6
    # and the other way round, a sure start that runs into unsure tokens stops before them
    planner.odds["lookup3"] = [0.0, 9.0]
    assert planner.budget(["lookup8", "lookup8", "lookup8", "lookup3", "lookup3"]) == 3


def test_the_planner_learns_each_source_apart_from_what_it_measures() -> None:
    planner = speculative.Planner(n_max=8)
    planner.single(0.030)
    for _ in range(6):  # lookup8 is always right; lookup2 never is
        planner.verified(["lookup8"] * 4, 4, draft_s=0.0, verify_s=0.030 * 3.0)
        planner.verified(["lookup2"] * 2, 0, draft_s=0.0, verify_s=0.030 * 2.0)
    assert planner.acceptance("lookup8") > 0.9 > 0.4 > planner.acceptance("lookup2")
    assert 0.45 < planner.beta < 0.55  # a 4-token draft cost 3 decodes: half a decode each
    planner.verified(["lookup8"] * 4, 4, draft_s=0.0, verify_s=0.030 * 12)  # one slow batch (a busy core)
    assert 0.45 < planner.beta < 0.55 and planner.budget(["lookup8"] * 8) >= 3  # changes nothing
    assert planner.budget(["lookup2"] * 8) == 0
    # A draft model's own time counts against it: the same acceptance, at a decode per token
    planner.verified(["model"] * 4, 4, draft_s=0.030 * 4, verify_s=0.030 * 3.0)
    assert planner.drafting["model"] > 0.9 and planner.drafting["lookup"] == 0.0
    planner.odds["model"] = list(planner.odds["lookup8"])
    assert planner.budget(["model"] * 8) < planner.budget(["lookup8"] * 8)


def test_the_planner_drafts_a_batch_size_that_costs_no_more_than_a_smaller_one() -> None:
    """On a CPU some batch sizes cost what the size below does (llama.cpp's kernels work in
    pairs of rows): once measured, such a size is drafted, though a straight line through
    the costs would stop short of it."""
    planner = speculative.Planner(n_max=8)
    planner.single(0.030)
    draft = ["lookup8"] * 8
    for _ in range(speculative.SIZE_SEEN):  # a batch of 1 + 3 tokens cost 2 single decodes
        planner.verified(draft[:3], 3, draft_s=0.0, verify_s=0.030 * 2.0)
    measured(planner, beta=0.5)
    planner.odds["lookup8"] = [4.0, 1.0]
    assert planner.cost(4) == pytest.approx(2.0) and planner.cost(3) == pytest.approx(2.0)
    assert planner.budget(draft) == 3
    planner._sizes.clear()  # by the straight line alone, 2 tokens
    assert planner.budget(draft) == 2


def test_each_token_of_a_draft_counts_for_its_own_source() -> None:
    """The tokens before the first wrong one are hits for their sources, the wrong one a
    miss for its own, and those after it say nothing (they were never really tried)."""
    planner = speculative.Planner(n_max=8)
    planner.observed(["lookup2", "lookup3", "lookup4", "lookup8", "lookup16"], 2)
    def decayed(source, hit=0.0, miss=0.0):
        was_hit, was_miss = speculative.PRIORS[source]
        return [was_hit * speculative.DECAY + hit, was_miss * speculative.DECAY + miss]

    assert planner.odds["lookup2"] == pytest.approx(decayed("lookup2", hit=1))
    assert planner.odds["lookup3"] == pytest.approx(decayed("lookup3", hit=1))
    assert planner.odds["lookup4"] == pytest.approx(decayed("lookup4", miss=1))
    assert "lookup8" not in planner.odds and "lookup16" not in planner.odds
    planner.observed(["lookup8"] * 5, 5)  # all right: no miss, and one decay for the draft
    assert planner.odds["lookup8"] == pytest.approx(decayed("lookup8", hit=5))


def test_a_longer_lookup_match_starts_out_surer() -> None:
    planner = speculative.Planner(n_max=8)
    sureness = [planner.acceptance(f"lookup{n}") for n in speculative.MATCH_CLASSES]
    assert sureness == sorted(sureness) and sureness[0] < 0.5 < 0.9 < sureness[-1]
    assert planner.acceptance("model") == 0.75


def test_a_source_given_up_is_tried_again_less_and_less_often() -> None:
    planner = speculative.Planner(n_max=8)
    planner.single(0.030)
    planner.odds["lookup3"] = [0.0, 5.0]
    tries = []
    for i in range(8 + 16 + 32):
        k = planner.budget(["lookup3"] * 8)
        if k:
            tries.append((i, k))
            planner.verified(["lookup3"] * k, 0, draft_s=0.0, verify_s=0.045)  # wrong again
    assert tries == [(7, 1), (7 + 16, 1), (7 + 16 + 32, 1)]  # one token at a time, ever rarer
    # A try that was right brings the short wait back; right often enough, the source drafts again.
    for _ in range(12):
        planner.verified(["lookup3"], 1, draft_s=0.0, verify_s=0.045)
    assert planner.probe_after["lookup3"] == speculative.PROBE_FIRST
    assert planner.budget(["lookup3"] * 8) >= 1


class _Model:
    """Just what a Verifier calls, counting the decodes."""

    n_batch, n_ctx = 512, 4096

    def __init__(self):
        self.singles = self.batches = 0

    def decode_one(self, token, n_past):
        self.singles += 1
        return 0

    def decode_batch(self, tokens, n_past):
        self.batches += 1
        return 0

    def kv_truncate(self, n_keep):
        pass


class _Declining:
    """A drafter whose budget is always 0: it says what it would have drafted."""

    def __init__(self, would):
        self.would = would
        self.sources = []
        self.declined = None

    def draft(self, context, last, n, budget=None):
        sources = ["lookup8"] * len(self.would)
        self.declined = (sources, list(self.would)) if budget(sources) == 0 else None
        return []


def test_a_declined_lookup_draft_is_checked_against_the_reply() -> None:
    """What lookup would have drafted costs nothing to know: the planner learns from it
    while it drafts nothing, so a source it gave up comes back once it is right again."""
    model = _Model()
    verifier = speculative.Verifier(model, None, _Declining([5, 6, 7]), [], n_draft=8, limit=100)
    planner = verifier.planner
    planner.odds["lookup8"] = [0.0, 4.0]  # given up: wrong four times in a row
    assert planner.budget(["lookup8"] * 3) == 0
    before = planner.acceptance("lookup8")
    for n, token in enumerate([4, 5, 6, 7]):  # the reply says what lookup would have drafted
        verifier.advance(token, n)
    assert model.batches == 0 and model.singles == 4  # nothing was verified
    assert planner.acceptance("lookup8") > before  # but three right tokens were counted
    hit, miss = planner.odds["lookup8"]
    assert hit == pytest.approx(3.0) and miss == pytest.approx(4.0 * speculative.DECAY)
    for n, token in enumerate([9, 5, 8], start=4):  # then a wrong one: counted as a miss
        verifier.advance(token, n)
    assert planner.odds["lookup8"][1] > miss


# What lookup drafts after [1, 2, 3, 9, 9, 1, 2, 4, 5, 6, 7, 1] + [2]: (1, 2) matched, 2 tokens
# agree before the first drafted token, 3 before the second...
WOULD_SOURCES = ["lookup2", "lookup3", "lookup4", "lookup4", "lookup4", "lookup4", "lookup8", "lookup8"]


def test_auto_keeps_a_declined_lookup_draft_under_lookup_s_name() -> None:
    """In auto mode the draft model is asked when lookup declines; if it declines too, what
    lookup would have drafted is still lookup's, not the draft model's, to learn from."""

    class Declining:
        sources = []
        declined = None

        def draft(self, context, last, n, budget=None):
            assert budget(["model"] * n) == 0
            return []

    auto = speculative.AutoDrafter(speculative.LookupDrafter(), Declining())
    context = [1, 2, 3, 9, 9, 1, 2, 4, 5, 6, 7, 1]
    assert auto.draft(context, 2, 8, lambda sources: 0) == []
    assert auto.sources == []
    assert auto.declined == (WOULD_SOURCES, [4, 5, 6, 7, 1, 2, 4, 5])


def test_lookup_names_each_drafted_token_by_how_far_its_match_reaches() -> None:
    drafter = speculative.LookupDrafter()
    asked = []

    def budget(sources):
        asked.append(list(sources))
        return 2

    context = [1, 2, 3, 9, 9, 1, 2, 4, 5, 6, 7, 1]
    # (1, 2) matched: 2 tokens agree before the first drafted token, 3 before the second...
    assert drafter.draft(context, 2, 8, budget) == [4, 5]  # cut to the budget
    assert asked == [WOULD_SOURCES]
    assert drafter.sources == ["lookup2", "lookup3"]
    assert drafter.draft([*context, 2, 3], 9, 8, budget) == [9, 1]  # (1, 2, 3, 9) matches
    assert drafter.sources == ["lookup4", "lookup4"]
    assert drafter.draft(context, 2, 8, lambda sources: 0) == []  # a budget of 0: no draft
    # past the end of the context the text is taken to repeat: 1, 2, 4, 5, ...
    assert drafter.declined == (WOULD_SOURCES, [4, 5, 6, 7, 1, 2, 4, 5])
    # A reply deep into copying a passage: the agreement is counted back to MATCH_CAP.
    passage = list(range(100, 160))
    drafter = speculative.LookupDrafter()
    copying = [*passage, 7, *passage[:40]]
    assert drafter.draft(copying, passage[40], 3) == passage[41:44]
    assert drafter.sources == ["lookup32"] * 3
    assert speculative.match_source(speculative.MATCH_CAP) == "lookup32"
    assert [speculative.match_source(n) for n in (2, 3, 4, 7, 8, 15, 16, 31)] == [
        "lookup2", "lookup3", "lookup4", "lookup4", "lookup8", "lookup8", "lookup16", "lookup16"]


def test_lookup_drafts_the_continuation_of_the_longest_recent_match() -> None:
    drafter = speculative.LookupDrafter()
    context = [1, 2, 3, 9, 9, 1, 2, 4, 5, 6, 7, 1]
    # (1, 2) was followed by 3 and later by 4, each agreeing 2 tokens back: the latest wins;
    # a longer n-gram wins over both.
    assert drafter.draft(context, 2, 3) == [4, 5, 6]
    assert drafter.draft([*context, 2, 3], 9, 2) == [9, 1]  # (1, 2, 3, 9) matches
    assert drafter.draft([7, 8], 6, 4) == []
    # Of two occurrences of the same 4 tokens, the one that agrees further back wins over
    # the latest: the reply is copying the first passage, not the second.
    drafter = speculative.LookupDrafter()
    context = [10, 11, 12, 13, 14, 15, 20, 30, 12, 13, 14, 15, 21, 40, 10, 11, 12, 13, 14]
    assert drafter.draft(context, 15, 3) == [20, 30, 12]
    assert drafter.sources == ["lookup4", "lookup4", "lookup8"]  # 6 tokens agreed, then 7, 8


def test_lookup_keeps_only_the_latest_occurrences_of_each_n_gram() -> None:
    """A reply stuck repeating itself must not make each draft compare ever more places."""
    drafter = speculative.LookupDrafter()
    context = [1, 2] * 500
    assert drafter.draft(context, 1, 5) == [2, 1, 2, 1, 2]
    assert drafter.sources == ["lookup32"] * 5
    assert max(len(at) for at in drafter._index.values()) == speculative.OCCURRENCES


# ---------------------------------------------------------------- greedy output is unchanged on SmolLM2

CODE = "def area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n    return 2 * w + 2 * h\n"
STORY = ("Marie Curie was born in Warsaw in 1867. She moved to Paris to study physics and "
         "mathematics at the Sorbonne, where she met Pierre Curie. Together they discovered "
         "polonium and radium, and she became the first person to win two Nobel Prizes.")
PROMPTS = [
    # free text
    "Write a short poem about the sea.",
    "What is the capital of France?",
    "Give me three tips for sleeping better.",
    "Tell me a story about a dragon who learns to cook.",
    "Explain what a CPU does in two sentences.",
    "List five fruits that are red.",
    "Why is the sky blue?",
    # summaries and quoting
    f"Summarize this text in one sentence: {STORY}",
    f"Repeat this text exactly: {STORY}",
    f"Who is this text about, and what did she discover? {STORY}",
    "Copy this list, one item per line: apples, pears, plums, cherries, grapes, melons.",
    "Fix the typos in this sentence: The quik brown fox jumpd over the lazzy dog.",
    "Translate to French, keeping the names: Alice and Bob went to London with Carol.",
    # code edits
    f"Rename the function area to rectangle_area in this code:\n{CODE}",
    f"Add a docstring to each function in this code:\n{CODE}",
    f"Rewrite this code with type hints:\n{CODE}",
    "Fix the bug in this Python code: def add(a, b): return a - b",
    "Convert this loop to a list comprehension: result = []\nfor x in range(10):\n    result.append(x * x)",
    "Write a Python function that reverses a string.",
    "Complete the sequence: 1, 2, 3, 4, 5, 6, 7, 8,",
]


@pytest.mark.smollm2
@pytest.mark.slow
def test_greedy_replies_on_smollm2_are_byte_identical_with_each_drafter(smollm2) -> None:
    """SmolLM2 drafts for itself, so most of each reply comes from verified batches, and
    those must give the very same bytes (the profile's repeat penalty included, which
    depends on every token kept). With
    flash attention: without it, llama.cpp's CPU attention rounds a batch of queries
    differently from a single one, and a near tie can go the other way."""
    assert len(PROMPTS) == 20
    session = open_session(load_profile("smollm2", {
        "sampling.temperature": 0.0, "sampling.max_tokens": 40, "model.n_ctx": 512, "model.flash_attn": True,
        "speculative.draft": str(smollm2)}))
    session.speculation.adaptive = False
    totals = Counter()
    try:
        for prompt in PROMPTS:
            replies = {}
            for mode in ("off", "lookup", "draft"):
                session.clear()  # each reads the prompt the same way (a /retry would evaluate its end alone)
                text, reason, stats, _ = turn(session, mode, prompt)
                replies[mode] = (text.encode(), reason)
                totals[mode, "drafted"] += stats.drafted
                totals[mode, "accepted"] += stats.accepted
                totals[mode, "tokens"] += stats.completion_tokens
                assert kv_positions(session) == len(session.loop.cached)
            assert replies["lookup"] == replies["off"], prompt
            assert replies["draft"] == replies["off"], prompt
    finally:
        session.close()
    assert totals["lookup", "accepted"] > 30  # the quoting prompts were drafted by lookup
    # Most of the replies came from verified drafts. Not all drafts are right: the draft is
    # plain greedy, without the profile's repeat penalty, and drafting never stops here.
    assert totals["draft", "accepted"] > 0.5 * totals["off", "tokens"]
    assert totals["draft", "accepted"] > 0.3 * totals["draft", "drafted"]


def test_pipe_json_reports_what_was_drafted_and_accepted(tmp_path) -> None:
    import json

    path = models.write_scripted_model(tmp_path / "j.gguf", ["ab1", "cd2", "ef3"], loop=True)
    args = ["-m", str(path), "-c", "256", "-n", "30", "--temp", "0", "--json", "hello"]
    plain = json.loads(run_cli(args).stdout)
    assert "drafted" not in plain["stats"]  # speculation off: the figures are as they were
    spec = json.loads(run_cli([*args, "--spec", "lookup"]).stdout)
    assert spec["text"] == plain["text"]
    stats = spec["stats"]
    assert 0 < stats["accepted"] <= stats["drafted"] and stats["decodes"] < stats["completion_tokens"]
    assert stats["tokens_per_decode"] == round(stats["completion_tokens"] / stats["decodes"], 3)
