"""Search strategies on a scripted tree where the right answer needs search.

The script for "What is 6 times 7?": the likeliest first step adds (13, wrong), a less likely
one multiplies (42, right), and a third divides by zero (its code fails). Greedy follows the
first choice and is wrong; majority voting follows the likelier path and is wrong; a reward
model that prefers the multiplying step, or ground truth, lets mcts / beam / weighted voting
find 42.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from edgestar.backends.fake import ScriptedPolicy, ScriptedReward
from edgestar.formats import PLAIN, RSTAR
from edgestar.search import STRATEGIES, run_search
from edgestar.search.mcts import backup, uct
from edgestar.tree import Node, Tree
from edgestar.types import Budget, InputError, SearchConfig

Q = "What is 6 times 7?"
ADD = "# Step 1: add the numbers\nx = 6 + 7\n<end_of_step>"
MUL = "# Step 1: multiply the numbers\nx = 6 * 7\n<end_of_step>"
DIV = "# Step 1: divide\nx = 6 / 0\n<end_of_step>"
PRINT = "# Now print the final answer\nprint(x)\n<end_of_code>"


def _answer(v: str) -> str:
    return f"<answer>The answer is \\boxed{{{v}}}<end_of_answer>"


def _after(*steps_and_outputs: str) -> str:
    return "".join(steps_and_outputs)


def make_script() -> dict:
    s = RSTAR.step_suffix
    out13, out42 = RSTAR.render_output("13"), RSTAR.render_output("42")
    return {
        "": [(ADD, 0.6), (MUL, 0.25), (DIV, 0.15)],
        _after(ADD, s): [PRINT],
        _after(MUL, s): [PRINT],
        _after(ADD, s, PRINT, s, out13): [_answer("13")],
        _after(MUL, s, PRINT, s, out42): [_answer("42")],
    }


class InProcessRunner:
    """Runs the script's own (trusted) code in-process; the sandbox has its own tests."""

    def __init__(self) -> None:
        self.calls = 0

    def run(self, code: str, prefix: str = ""):
        import contextlib
        import io
        from types import SimpleNamespace

        self.calls += 1
        ns: dict = {}
        buf = io.StringIO()
        try:
            exec(prefix, ns)
            with contextlib.redirect_stdout(buf):
                exec(code, ns)
        except Exception as e:
            return SimpleNamespace(
                ok=False, stdout="", error=f"{type(e).__name__}: {e}", timed_out=False, seconds=0.0
            )
        return SimpleNamespace(
            ok=True, stdout=buf.getvalue(), error=None, timed_out=False, seconds=0.0
        )


PPM = [("6 * 7", 0.9), ("6 + 7", -0.6)]


def solve(strategy: str, *, reward=None, gold=None, seed=0, budget=None, **cfg):
    result, tree = run_search(
        Q,
        policy=ScriptedPolicy(make_script()),
        fmt=RSTAR,
        strategy=strategy,
        budget=budget or Budget(rollouts=16),
        config=SearchConfig(**cfg),
        reward=ScriptedReward(PPM) if reward else None,
        runner=InProcessRunner(),
        seed=seed,
        gold=gold,
    )
    return result, tree


def test_registry_has_four_strategies():
    assert set(STRATEGIES) == {"greedy", "best_of_n", "beam", "mcts"}


def test_greedy_follows_first_choice_and_is_wrong():
    r, tree = solve("greedy")
    assert r.answer == "13"
    assert r.stopped_by == "done"
    assert [s.output for s in r.steps if s.output] == [RSTAR.render_output("13")]
    assert r.stats.rollouts == 1 and r.stats.executions == 2


def test_majority_vote_follows_the_likelier_wrong_path():
    r, _ = solve("best_of_n", n=8, select="majority", seed=0)
    assert r.answer == "13"
    assert dict(r.candidates)["13"] > dict(r.candidates).get("42", 0)


def test_prm_weighted_vote_finds_the_right_answer():
    r, _ = solve("best_of_n", n=8, select="weighted", reward=True, seed=0)
    assert r.answer == "42"


def test_a_reward_model_breaks_a_majority_tie():
    """Two chains, one adding (13) and one multiplying (42): the count is tied. Without a
    reward model the likelier path wins; with one, the answer it scores higher."""
    ties = 0
    for seed in range(12):
        kw = dict(n=2, select="majority", seed=seed, budget=Budget(rollouts=2))
        plain, _ = solve("best_of_n", **kw)
        if dict(plain.candidates) != {"13": 1.0, "42": 1.0}:
            continue
        ties += 1
        headed, _ = solve("best_of_n", reward=True, **kw)
        assert plain.answer == "13" and headed.answer == "42"
        assert dict(headed.candidates) == {"13": 1.0, "42": 1.0}  # still a count
    assert ties >= 1


def test_count_leaves_a_tie_to_the_policy_even_with_a_reward_model():
    """select='count': the same tied count, but the reward model never decides (a ranker that
    is at chance on the chains drawn should not pick): the likelier path wins, as with none;
    the decided stop still counts votes."""
    ties = 0
    for seed in range(12):
        kw = dict(n=2, seed=seed, budget=Budget(rollouts=2))
        plain, _ = solve("best_of_n", select="majority", **kw)
        if dict(plain.candidates) != {"13": 1.0, "42": 1.0}:
            continue
        ties += 1
        counted, _ = solve("best_of_n", select="count", reward=True, **kw)
        assert counted.answer == "13" and dict(counted.candidates) == {"13": 1.0, "42": 1.0}
    assert ties >= 1
    # 8 chains with a reward model: majority and count give the same counts
    r, _ = solve("best_of_n", n=8, select="count", reward=True, seed=0)
    assert r.answer == "13" and dict(r.candidates)["13"] > dict(r.candidates).get("42", 0)
    with pytest.raises(InputError, match="majority, count, weighted or max"):
        SearchConfig(select="vote")


def test_beam_with_prm_finds_the_right_answer():
    r, _ = solve("beam", width=8, beam_width=2, reward=True)
    assert r.answer == "42"
    assert r.stopped_by == "done"


def test_mcts_with_ppm_finds_the_right_answer():
    r, tree = solve("mcts", width=8, reward=True)
    assert r.answer == "42"
    assert r.steps[0].code == "# Step 1: multiply the numbers\nx = 6 * 7"
    assert r.stats.reward_calls > 0


def test_mcts_terminal_guided_backup_with_ground_truth():
    r, tree = solve("mcts", width=8, gold="42")
    assert r.answer == "42"
    answers = [n for n in tree.nodes if n.kind == "answer"]
    assert {n.answer: n.correct for n in answers} == {"13": False, "42": True}
    assert all(n.reward == (1.0 if n.correct else -1.0) for n in answers)
    assert tree.root.solved and r.stopped_by == "done"


def test_failed_code_is_a_terminal_error_with_value_minus_one():
    # All 8 sampled (greedy_first off), so the seeded draw includes the dividing step.
    _, tree = solve("mcts", width=8, reward=True, greedy_first=False)
    errs = [n for n in tree.nodes if n.kind == "error"]
    assert errs and all(n.error.startswith("ZeroDivisionError") for n in errs)
    assert all(n.N == 1 and n.W == -1.0 and n.solved for n in errs)


def test_mcts_without_reward_model_uses_answer_agreement():
    r, tree = solve("mcts", width=8)
    assert r.answer in {"13", "42"}
    assert r.stopped_by == "done"  # tiny tree: fully explored before 16 rollouts


def test_uct_arithmetic_by_hand():
    child = Node(id=1, parent=0, depth=1, N=2, W=1.0)
    assert uct(child, 10, 2.0) == pytest.approx(0.5 + 2 * math.sqrt(math.log(10) / 2))
    assert uct(Node(id=2, parent=0, depth=1), 10, 2.0) == math.inf
    # ln(1) = 0: with one parent visit, UCT is Q alone.
    assert uct(Node(id=3, parent=0, depth=1, N=1, W=0.7), 1, 2.0) == pytest.approx(0.7)


def test_backup_arithmetic_by_hand():
    tree = Tree("q", "p")
    a = tree.add(tree.root, kind="code")
    b = tree.add(a, kind="answer", answer="1")
    b.N, b.W = 1, 0.4  # PPM-initialised Q
    backup([tree.root, a, b], 0.4)
    backup([tree.root, a, b], -1.0)
    assert (tree.root.N, tree.root.W) == (2, pytest.approx(-0.6))
    assert (b.N, b.Q) == (3, pytest.approx((0.4 + 0.4 - 1.0) / 3))


def test_mcts_picks_ppm_preferred_child_first():
    # After the first expansion with a PPM, the next rollout goes where Q + UCT is highest.
    r, tree = solve("mcts", width=8, reward=True, budget=Budget(rollouts=1))
    first = tree.children(tree.root)
    assert r.stats.rollouts == 1
    visited = [n for n in first if n.N > 1]
    assert len(visited) == 1 and "6 * 7" in visited[0].text


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_same_seed_same_tree(strategy):
    a, _ = solve(strategy, seed=7, reward=True)
    b, _ = solve(strategy, seed=7, reward=True)
    assert a.tree == b.tree and a.answer == b.answer


def test_token_budget_is_hard_and_anytime():
    r, _ = solve("mcts", width=8, reward=True, budget=Budget(rollouts=None, tokens=30))
    assert r.stopped_by == "tokens"
    assert r.stats.tokens_generated <= 30


def test_node_budget_stops_the_search():
    r, tree = solve("mcts", width=8, reward=True, budget=Budget(rollouts=None, nodes=3))
    assert r.stopped_by == "nodes"
    assert len(tree) - 1 <= 3


def test_seconds_budget_returns_best_so_far():
    r, _ = solve("mcts", budget=Budget(rollouts=None, seconds=1e-9))
    assert r.stopped_by == "seconds" and r.answer is None


def test_rollout_budget_anytime_answer():
    r, _ = solve("mcts", width=8, gold="42", budget=Budget(rollouts=1))
    assert r.stopped_by == "rollouts" and r.stats.rollouts == 1 and r.answer is not None


@pytest.mark.parametrize(
    "kw",
    [
        dict(rollouts=0),
        dict(rollouts=-1),
        dict(tokens=0),
        dict(seconds=-1.0),
        dict(rollouts=None),
        dict(rollouts=1.5),
        dict(seconds=float("nan")),
    ],
)
def test_bad_budgets_are_refused(kw):
    with pytest.raises(InputError):
        Budget(**kw)


def test_bad_strategy_and_config_are_refused():
    with pytest.raises(InputError, match="unknown strategy"):
        solve("dfs")
    with pytest.raises(InputError):
        SearchConfig(width=0)
    with pytest.raises(InputError):
        SearchConfig(top_p=0)


def test_plain_format_without_code():
    start = "Let's think step by step.\n"
    policy = ScriptedPolicy(
        {"": ["6 times 7 is 42.\n\n"], "6 times 7 is 42.\n\n": ["So \\boxed{42}"]}, start=start
    )
    r, _ = run_search(Q, policy=policy, fmt=PLAIN, strategy="greedy")
    assert r.answer == "42" and len(r.steps) == 2


class _Recording(ScriptedPolicy):
    def __init__(self) -> None:
        super().__init__(make_script())
        self.requests: list = []

    def propose(self, requests):
        self.requests += list(requests)
        return super().propose(requests)


def _bon(budget: Budget, **cfg):
    policy = _Recording()
    r, tree = run_search(Q, policy=policy, fmt=RSTAR, strategy="best_of_n", budget=budget,
                         config=SearchConfig(**cfg), runner=InProcessRunner(), seed=0)  # fmt: skip
    return r, tree, policy


def test_best_of_n_draws_as_many_chains_as_the_rollouts_budget():
    r, tree, policy = _bon(Budget(rollouts=20), n=8, stop_when_decided=False)
    assert len(tree.children(tree.root)) == 20 and r.stopped_by == "done"  # waves of 8, 8, 4
    greedy_at_root = [q for q in policy.requests if q.temperature == 0 and "Step" not in q.prefix]
    assert len(greedy_at_root) == 1  # only the first wave holds the greedy chain
    r, tree, _ = _bon(Budget(rollouts=3), n=8)
    assert len(tree.children(tree.root)) == 3  # the rollouts budget caps N


def _slow_greedy_chain(policy_class: type[ScriptedPolicy] = ScriptedPolicy, **kw):  # type: ignore[no-untyped-def]
    """The greedy chain thinks for three steps and answers 13; every sampled chain answers 42
    at once, so three of four agree while the greedy chain is still thinking."""
    start = "Let's think step by step.\n"
    think = "Let me think.\n\n"
    script = {
        "": [(think, 1e-12), ("So \\boxed{42}", 1.0)],
        think: ["Hmm.\n\n"],
        think + "Hmm.\n\n": ["Still.\n\n"],
        think + "Hmm.\n\nStill.\n\n": ["So \\boxed{13}"],
    }
    return run_search(Q, policy=policy_class(script, start=start), fmt=PLAIN,
                      strategy="best_of_n", **kw)  # fmt: skip


def test_best_of_n_stops_once_the_vote_is_decided():
    r, tree = _slow_greedy_chain(budget=Budget(rollouts=4), config=SearchConfig(n=4))
    full, full_tree = _slow_greedy_chain(
        budget=Budget(rollouts=4), config=SearchConfig(n=4, stop_when_decided=False)
    )
    assert r.answer == full.answer == "42" and r.stopped_by == "done"
    assert dict(full.candidates) == {"42": 3.0, "13": 1.0}
    assert r.stats.rollouts == 3 and full.stats.rollouts == 4  # the greedy chain was cut
    assert r.stats.tokens_generated < full.stats.tokens_generated
    # not decided while the undrawn chains of a later wave could still outvote it: the greedy
    # chain of the first wave is decoded to its answer
    r, _ = _slow_greedy_chain(budget=Budget(rollouts=8), config=SearchConfig(n=4))
    assert r.stats.rollouts == 8 and dict(r.candidates) == {"42": 7.0, "13": 1.0}
    # ground truth (training) and a vote weighted by a reward model that reads text (it
    # cannot score before the stream ends) always see every chain
    r, _ = _slow_greedy_chain(budget=Budget(rollouts=4), config=SearchConfig(n=4), gold="42")
    assert r.stats.rollouts == 4
    weighted = SearchConfig(n=4, select="weighted")
    r, _ = _slow_greedy_chain(budget=Budget(rollouts=4), config=weighted,
                              reward=ScriptedReward([("42", 0.9)]))  # fmt: skip
    assert r.stats.rollouts == 4


class _StatePolicy(ScriptedPolicy):
    """A scripted policy whose steps carry a hidden state: [1] for an answer of 42, else [0]."""

    def _finish(self, text, req):  # type: ignore[no-untyped-def]
        c = super()._finish(text, req)
        return dataclasses.replace(c, hidden=np.array([1.0 if "42" in c.text else 0.0]))


class _StateHead:
    """A head on that state: `hi` for a 42, `lo` otherwise; counts its calls."""

    name = "state-head"

    def __init__(self, hi: float, lo: float) -> None:
        self.hi, self.lo, self.calls = hi, lo, 0

    def score_hidden(self, hidden):  # type: ignore[no-untyped-def]
        self.calls += 1
        return [self.hi if h[0] > 0.5 else self.lo for h in hidden]

    def score(self, prefixes):  # type: ignore[no-untyped-def]
        raise AssertionError("every step has a state: nothing is scored from text")

    def close(self) -> None:
        pass


def test_a_head_weighted_vote_stops_once_decided():
    """A head scores each answer as its chain ends, so a weighted vote knows when it is decided:
    three 42s at weight 0.95 each (2.85) cannot be caught by the one chain left (at most 1)."""

    def go(head: _StateHead, stop: bool = True):  # type: ignore[no-untyped-def]
        cfg = SearchConfig(n=4, select="weighted", stop_when_decided=stop)
        return _slow_greedy_chain(_StatePolicy, budget=Budget(rollouts=4), config=cfg,
                                  reward=head)[0]  # fmt: skip

    cut, full = go(_StateHead(0.9, -1.0)), go(_StateHead(0.9, -1.0), stop=False)
    assert cut.answer == full.answer == "42"
    assert cut.stats.rollouts == 3 and full.stats.rollouts == 4  # the 13 chain was cut
    assert cut.stats.tokens_generated < full.stats.tokens_generated
    # three 42s the head doubts (weight 0.2 each, 0.6 in all) could still lose to one
    # confident 13: every chain is decoded
    r = go(_StateHead(-0.6, 0.9))
    assert r.stats.rollouts == 4 and r.answer == "13"


def test_a_chain_past_its_token_cap_ends_invalid():
    """max_chain_tokens ends a chain that has not answered within it, as the depth cap does, and
    no step is asked for more than the chain has left; the vote goes on without it."""
    cfg = SearchConfig(n=4, stop_when_decided=False, max_chain_tokens=5)
    r, tree = _slow_greedy_chain(budget=Budget(rollouts=4), config=cfg)
    assert dict(r.candidates) == {"42": 3.0} and r.answer == "42"
    cut = [n for n in tree.nodes if n.kind == "invalid"]
    assert len(cut) == 1 and cut[0].error == "chain token cap 5 reached"
    assert sum(p.n_tokens for p in tree.path(cut[0])) == 5  # its last step was asked for 1
    # the cap is a positive whole number or None
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="max_chain_tokens"):
            SearchConfig(max_chain_tokens=bad)


def test_best_of_n_spends_a_token_budget_in_waves():
    one_wave = _bon(Budget(rollouts=8), n=8)[0].stats.tokens_generated
    r, tree, _ = _bon(Budget(rollouts=None, tokens=4 * one_wave), n=8)
    assert r.stopped_by == "tokens"
    assert 2 * one_wave < r.stats.tokens_generated <= 4 * one_wave
    assert len(tree.children(tree.root)) > 16


def test_token_budget_mid_search():
    r, _ = solve("mcts", width=8, reward=True, budget=Budget(rollouts=None, tokens=150))
    assert r.stopped_by == "tokens"
    assert 0 < r.stats.tokens_generated <= 150


def test_answer_contradicting_the_printed_output_is_invalid():
    s = RSTAR.step_suffix
    script = {
        "": [MUL],
        _after(MUL, s): [PRINT],
        _after(MUL, s, PRINT, s, RSTAR.render_output("42")): [_answer("13")],
    }
    policy_writes = SearchConfig(answer_from_output=False)
    r, tree = run_search(Q, policy=ScriptedPolicy(script), fmt=RSTAR, strategy="greedy",
                         runner=InProcessRunner(), config=policy_writes)  # fmt: skip
    last = tree.nodes[-1]
    assert last.kind == "invalid" and "contradicts" in last.error and r.answer is None
    r2, _ = run_search(Q, policy=ScriptedPolicy(script), fmt=RSTAR, strategy="greedy",
                       runner=InProcessRunner(),
                       config=SearchConfig(answer_from_output=False, check_answer=False))  # fmt: skip
    assert r2.answer == "13"
    # By default the runtime writes the answer step from the printed output: no tokens spent,
    # and the policy is never asked for it.
    policy = ScriptedPolicy(script)
    r3, tree3 = run_search(Q, policy=policy, fmt=RSTAR, strategy="greedy",
                           runner=InProcessRunner())  # fmt: skip
    assert r3.answer == "42" and tree3.nodes[-1].n_tokens == 0 and policy.calls == 2
    assert tree3.nodes[-1].text == RSTAR.answer_step("42") + RSTAR.step_suffix


@pytest.mark.parametrize(
    "answer, stdout, ok",
    [
        ("42", "42\n", True),
        ("\\frac{1}{2}", "0.5", True),
        ("42", "The total is 42.", True),
        ("13", "42", False),
        ("7", "", True),
        ("3", "1\n2\n3", True),
    ],
)
def test_answer_matches_output(answer, stdout, ok):
    from edgestar.search.base import answer_matches_output

    assert answer_matches_output(answer, stdout) is ok
