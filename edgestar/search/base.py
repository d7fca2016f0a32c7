"""What every search strategy shares: the context it runs in, node expansion, and answer choice.

A strategy is a function `search(ctx) -> str` that grows `ctx.tree` until it is done (returns
'done') or a budget runs out (returns the budget's name). It meets models only through
`ctx.expand` (policy + step parsing + code execution + reward scoring) and never sees a backend,
tokenizer or executor directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from ..answer import equivalent, normalize
from ..backends.base import Candidate, Policy, Proposal, Reward, StepRequest
from ..budget import BudgetTracker
from ..formats import StepFormat
from ..tree import Node, Tree
from ..types import SearchConfig, SearchEvent, StepView


class CodeRunner(Protocol):
    """The executor as the search sees it (edgestar.executor.Executor satisfies it)."""

    def run(self, code: str, prefix: str = ""): ...  # -> ExecResult


@dataclass
class Counters:
    tokens_evaluated: int = 0
    executions: int = 0
    execution_seconds: float = 0.0
    reward_calls: int = 0


@dataclass
class SearchContext:
    tree: Tree
    policy: Policy
    fmt: StepFormat
    config: SearchConfig
    tracker: BudgetTracker
    rng: np.random.Generator
    reward: Reward | None = None
    runner: CodeRunner | None = None
    gold: str | None = None
    """Ground-truth answer: terminals are then valued +1 / -1 (rStar's terminal-guided rounds)."""
    counters: Counters = field(default_factory=Counters)
    on_event: Callable[[SearchEvent], None] | None = None
    """Told of progress after every expansion and of each settled step (SearchEvent); an
    exception it raises stops the search between expansions (a server cancels this way)."""
    settled: list[Node] = field(default_factory=list)
    """The chosen path's steps reported as settled so far, in path order."""

    def next_seed(self) -> int:
        return int(self.rng.integers(0, 2**63 - 1))

    # ------------------------------------------------------------------ events
    def emit(self, kind: str, step: StepView | None = None, index: int | None = None) -> None:
        """Tell `on_event` (if any) how far the search is, or that a step is settled."""
        if self.on_event is not None:
            tr = self.tracker
            self.on_event(
                SearchEvent(kind, tr.rollouts, tr.tokens, tr.nodes, tr.seconds, step, index)
            )

    def settle(self, frontier: Sequence[Node]) -> None:
        """Report as settled the steps shared by every node the search may still grow from
        (`frontier`) and every answer found so far: whatever answer the search ends with, its
        path goes through them."""
        if self.on_event is None:
            return
        ends = [
            *frontier,
            *(n for n in self.tree.nodes if n.kind == "answer" and n.answer is not None),
        ]
        if not ends:
            return
        common = self.tree.path(ends[0])
        for n in ends[1:]:
            path = self.tree.path(n)
            k = 0
            while k < min(len(common), len(path)) and common[k] is path[k]:
                k += 1
            common = common[:k]
        self._settle_path(common)

    def settle_chosen(self, best: Node | None) -> None:
        """The search has stopped: the rest of the chosen path is settled."""
        if self.on_event is not None and best is not None:
            self._settle_path(self.tree.path(best))

    def _settle_path(self, path: list[Node]) -> None:
        for i, n in enumerate(path):
            if i < len(self.settled):
                if self.settled[i] is not n:  # would mean a wrong step was streamed
                    raise RuntimeError(f"settled step {i} is not on the chosen path")
                continue
            self.settled.append(n)
            self.emit("step", step_view(n), i)

    # ------------------------------------------------------------------ expansion
    def expand(
        self,
        nodes: Sequence[Node],
        k: int,
        *,
        temperature: float | None = None,
        dedup: bool = True,
        greedy_first: bool | None = None,
    ) -> list[list[Node]]:
        """Propose k candidate steps for each node (one batched policy call), parse them, run
        their code, score them, and add them as children. Returns the new children per node.

        Candidates identical to a sibling are merged when `dedup` (their tokens still count).
        `greedy_first` overrides config.greedy_first (best-of-N's later waves sample only).
        Respects the token and node budgets: never generates past the token budget and never
        adds more nodes than allowed.
        """
        cfg, tr = self.config, self.tracker
        temp = cfg.temperature if temperature is None else temperature
        written = {n.id: a for n in nodes if (a := self.written_answer(n)) is not None}
        asked = [n for n in nodes if n.id not in written]
        k = tr.row_cap(k, len(asked))
        max_tokens = tr.token_cap(cfg.max_step_tokens, k * max(1, len(asked)))
        # greedy_first: one argmax candidate + (k - 1) samples, asked as two requests per node
        # (same prefix, so a caching backend evaluates it once) and merged back into one.
        first = cfg.greedy_first if greedy_first is None else greedy_first
        split = first and temp > 0 and k > 1
        requests = []
        # code_first: every first step opens with the format's code fence, written by the runtime
        opener = self.fmt.code_opener if cfg.code_first else ""
        opened = [n.kind == "root" and bool(opener) for n in asked]
        for n, op in zip(asked, opened, strict=True):
            prefix = self.tree.prefix(n) + (opener if op else "")
            parts = ((1, 0.0), (k - 1, temp)) if split else ((k, temp),)
            left = self.chain_tokens_left(n)
            cap = max_tokens if left is None else max(1, min(max_tokens, left))
            for kk, t in parts:
                requests.append(self.step_request(prefix, kk, cap, t))
        raw = self.policy.propose(requests) if requests else []
        if split:
            raw = [
                Proposal(a.candidates + b.candidates, a.tokens_evaluated + b.tokens_evaluated)
                for a, b in zip(raw[::2], raw[1::2], strict=True)
            ]
        if any(opened):  # the opener is the first step's own text (no tokens generated)
            raw = [
                Proposal(tuple(replace(c, text=opener + c.text) for c in p.candidates),
                         p.tokens_evaluated)
                if op else p
                for p, op in zip(raw, opened, strict=True)
            ]  # fmt: skip
        raw = self._continue_open_blocks(asked, raw, max_tokens, temp, split)
        got = iter(raw)
        proposals = [
            Proposal((written[n.id],), 0) if n.id in written
            else next(got)
            for n in nodes
        ]  # fmt: skip
        out: list[list[Node]] = []
        dead: list[bool] = []
        to_score: list[Node] = []
        for node, prop in zip(nodes, proposals, strict=True):
            self.counters.tokens_evaluated += prop.tokens_evaluated
            node.expanded = True
            seen = {c.text for c in self.tree.children(node)} if dedup else set()
            kids: list[Node] = []
            capped = False
            for cand in prop.candidates:
                tr.tokens += cand.n_tokens
                if dedup and cand.text in seen:
                    continue
                seen.add(cand.text)
                child = self.adopt(node, cand)
                if child is None:
                    capped = True
                    continue
                kids.append(child)
                if child.kind not in ("invalid", "error"):
                    to_score.append(child)
            out.append(kids)
            dead.append(not kids and not node.children and not capped)
        self.score(to_score)
        self.settle_values([c for kids in out for c in kids])
        for node, is_dead in zip(nodes, dead, strict=True):
            if is_dead and node.kind != "root":
                # Nothing was proposed at all: the branch is a dead end.
                node.kind, node.reward, node.error = "invalid", -1.0, "no candidate step"
                self.tree.mark_solved(node)
        self.emit("progress")
        return out

    def step_request(
        self, prefix: str, k: int, max_tokens: int, temperature: float, stop: tuple[str, ...] = ()
    ) -> StepRequest:
        """A request for k next steps of `prefix` (stop: the format's step stops by default)."""
        return StepRequest(
            prefix=prefix,
            k=k,
            seed=self.next_seed(),
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=self.config.top_p,
            stop=stop or self.fmt.stop,
        )

    def adopt(self, node: Node, cand: Candidate) -> Node | None:
        """Add `cand` as a child of `node` (parsed, its code run), unless the node budget is
        spent (None). Its tokens are counted by the caller; score it, then `settle_values`."""
        cap = self.tracker.node_cap()
        if cap is not None and cap <= 0:
            return None
        child = self._make_child(
            node, cand.text, cand.finish, cand.stop, cand.n_tokens, cand.logprob
        )
        child.hidden = cand.hidden
        self.tracker.nodes += 1
        return child

    def settle_values(self, kids: Sequence[Node]) -> None:
        """Values known once the new children are scored: terminals from ground truth or their
        score; failed steps count as seen once at -1 (nothing to learn by visiting them)."""
        for c in kids:
            if c.terminal:
                self._value_terminal(c)
            if c.kind in ("error", "invalid"):
                c.N, c.W = 1, -1.0
                self.tree.mark_solved(c)

    def _continue_open_blocks(
        self,
        nodes: Sequence[Node],
        proposals: list[Proposal],
        max_tokens: int,
        temp: float,
        split: bool,
    ) -> list[Proposal]:
        """tir: a candidate that stopped at a blank line inside an open code block is not a
        whole step: decode it on (same temperature, within its step's token cap) with the
        format's code stop until the block closes. All such candidates go in one batched call
        per round; the continuation joins its candidate (text, tokens, log-probability)."""
        props = list(proposals)
        chain_left = [self.chain_tokens_left(n) for n in nodes]
        for _ in range(4):
            todo: list[tuple[int, int, StepRequest]] = []
            for i, (node, prop) in enumerate(zip(nodes, props, strict=True)):
                for j, c in enumerate(prop.candidates):
                    stop = self.fmt.continue_stop(c.text, c.finish)
                    left = max_tokens - c.n_tokens
                    if chain_left[i] is not None:  # nor past the chain's token cap
                        left = min(left, chain_left[i] - c.n_tokens)
                    if stop is None or left < 1:
                        continue
                    t = 0.0 if (split and j == 0) or temp <= 0 else temp
                    req = self.step_request(self.tree.prefix(node) + c.text, 1, left, t, stop)
                    todo.append((i, j, req))
            if not todo:
                break
            more = self.policy.propose([r for _, _, r in todo])
            for (i, j, _), p in zip(todo, more, strict=True):
                joined = join_candidates(props[i].candidates[j], p.candidates[0])
                cands = props[i].candidates
                props[i] = Proposal(
                    cands[:j] + (joined,) + cands[j + 1 :],
                    props[i].tokens_evaluated + p.tokens_evaluated,
                )
        return props

    def written_answer(self, node: Node) -> Candidate | None:
        """The answer step the runtime writes after `node`'s code printed its result (rstar),
        as a candidate that cost no tokens; None if there is none."""
        if not (self.config.answer_from_output and node.kind == "final" and node.stdout):
            return None
        lines = [ln.strip() for ln in node.stdout.strip().splitlines() if ln.strip()]
        if not lines or len(lines[-1]) > 100:
            return None
        return Candidate(self.fmt.answer_step(lines[-1]), 0, "stop", None)

    def _make_child(
        self, parent: Node, text: str, finish: str, stop: str | None, n_tokens: int, logprob: float
    ) -> Node:
        step = self.fmt.parse(text, finish, stop)
        child = self.tree.add(
            parent,
            text=step.text,
            kind=step.kind,
            code=step.code,
            answer=step.answer,
            n_tokens=n_tokens,
            logprob=logprob,
        )
        if step.kind in ("code", "final") and self.fmt.executes_code and self.runner is not None:
            res = self.runner.run(step.code or "", self.tree.path_code(parent))
            self.counters.executions += 1
            self.counters.execution_seconds += res.seconds
            if not res.ok:
                child.error = res.error or ("timeout" if res.timed_out else "failed")
                if self.fmt.on_error == "show":
                    # TIR: the model sees the error as the block's output and may repair it.
                    child.output = self.fmt.render_error(child.error)
                    child.text += child.output
                else:
                    child.kind = "error"
            elif step.kind == "final" or self.fmt.output_every_step:
                child.stdout = res.stdout
                child.output = self.fmt.render_output(res.stdout)
                child.text += child.output
        printed = self._last_stdout(parent) if step.kind == "answer" else None
        check = self.config.check_answer
        if (
            (self.fmt.check_answer if check is None else check)
            and printed is not None
            and not answer_matches_output(step.answer, printed)
        ):
            child.kind = "invalid"
            child.error = "the boxed answer contradicts the code's printed output"
        if not child.terminal and child.depth >= self.config.max_depth:
            child.kind = "invalid"
            child.error = f"depth cap {self.config.max_depth} reached"
        left = self.chain_tokens_left(child)
        if left is not None and left <= 0 and child.kind != "answer" and child.error is None:
            child.kind = "invalid"  # cut short by the cap, or unfinished when it ran out
            child.error = f"chain token cap {self.config.max_chain_tokens} reached"
        return child

    def chain_tokens_left(self, node: Node) -> int | None:
        """Tokens the path to `node` may still generate under config.max_chain_tokens (None: no
        cap)."""
        cap = self.config.max_chain_tokens
        if cap is None:
            return None
        return cap - sum(p.n_tokens for p in self.tree.path(node))

    def _last_stdout(self, parent: Node) -> str | None:
        """What the last code on the path printed, for checking an answer against: rstar's
        answer follows its final code step; tir's may follow reasoning after the output."""
        if parent.kind == "final":
            return parent.stdout
        if not self.fmt.output_every_step:
            return None
        for n in reversed(self.tree.path(parent)):
            if n.stdout is not None:
                return n.stdout
        return None

    def score_ended(self, node: Node) -> bool:
        """Score a chain's answer the moment it ends, when the reward model reads the policy's
        recorded hidden state (a head: no model call, so it can run mid-stream); whether it
        could. What a weighted vote needs to know it is decided (best_of_n)."""
        by_state = getattr(self.reward, "score_hidden", None)
        if by_state is None or node.hidden is None or node.kind != "answer":
            return False
        self.score([node])
        self.settle_values([node])
        return True

    def score(self, nodes: list[Node]) -> None:
        """Set each node's `prior` from the reward model (nothing without one)."""
        if self.reward is None or not nodes:
            return
        # A head on the policy's hidden state scores recorded states for free; the rest (and
        # every node, for a PPM) are scored from their prefix text.
        by_state = getattr(self.reward, "score_hidden", None)
        known = [n for n in nodes if by_state is not None and n.hidden is not None]
        rest = [n for n in nodes if by_state is None or n.hidden is None]
        if known:
            for n, s in zip(known, by_state(np.stack([n.hidden for n in known])), strict=True):
                n.prior = float(s)
        by_path = getattr(self.reward, "score_paths", None)  # an off-the-shelf PRM (edgestar.prm)
        if rest and by_path is not None:
            paths = [[p.text for p in self.tree.path(n)] for n in rest]
            for n, s in zip(rest, by_path(self.tree.question, paths), strict=True):
                n.prior = float(s)
        elif rest:
            scores = self.reward.score([self.tree.prefix(n) for n in rest])
            for n, s in zip(rest, scores, strict=True):
                n.prior = float(s)
        self.counters.reward_calls += 1

    def _value_terminal(self, node: Node) -> None:
        if node.kind != "answer":
            node.reward = -1.0
            return
        if self.gold is not None:
            node.correct = equivalent(self.gold, node.answer)
            node.reward = 1.0 if node.correct else -1.0
        elif node.prior is not None:
            node.reward = node.prior

    # ------------------------------------------------------------------ answers
    def answer_support(self, node: Node) -> float | None:
        """How much a terminal's answer counts in a weighted vote (None: unscored)."""
        if node.reward is None:
            return None
        return (node.reward + 1.0) / 2.0

    def path_logprob(self, node: Node) -> float:
        """Mean log-probability per generated token of the path to `node` (runtime-written
        steps, which cost no tokens, do not count)."""
        path = self.tree.path(node)
        n = sum(p.n_tokens for p in path)
        return sum(p.logprob for p in path) / n if n else 0.0

    def choose(self) -> tuple[Node | None, list[tuple[str, float]]]:
        """Pick the final answer among finished answers (config.select) and its best path."""
        finished = [n for n in self.tree.nodes if n.kind == "answer" and n.answer is not None]
        if not finished:
            return None, []
        groups: dict[str, list[Node]] = {}
        for n in finished:
            groups.setdefault(normalize(n.answer), []).append(n)
        sel = self.config.select
        support: dict[str, float] = {}
        for key, members in groups.items():
            ws = [self.answer_support(m) for m in members]
            if sel in ("majority", "count") or all(w is None for w in ws):
                support[key] = float(len(members))
            elif sel == "weighted":
                support[key] = float(sum(w for w in ws if w is not None))
            else:
                support[key] = float(max(w for w in ws if w is not None))
        # Best group first; ties broken by group size, then by the reward model's summed
        # scores (a majority vote with a head: the head decides what the count leaves open;
        # not for 'count'), then by how likely the policy found its best path (mean
        # log-probability per token), then by first appearance.
        if sel == "count":  # the reward model never decides: ties by the policy's confidence
            scored = dict.fromkeys(groups, 0.0)
        else:
            scored = {k: sum(w for m in ms if (w := self.answer_support(m)) is not None)
                      for k, ms in groups.items()}  # fmt: skip
        conf = {k: max(self.path_logprob(m) for m in ms) for k, ms in groups.items()}
        order = sorted(
            groups,
            key=lambda k: (-support[k], -len(groups[k]), -scored[k], -conf[k], groups[k][0].id),
        )
        best = max(groups[order[0]], key=lambda m: (_rank(m), self.path_logprob(m), -m.id))
        return best, [(groups[k][0].answer or "", round(support[k], 6)) for k in order]


def join_candidates(c: Candidate, d: Candidate) -> Candidate:
    """A candidate decoded on (`d`, from the end of `c`) joined to it: one step."""
    return Candidate(
        c.text + d.text, c.n_tokens + d.n_tokens, d.finish, d.stop, c.logprob + d.logprob, d.hidden
    )


def step_view(n: Node) -> StepView:
    """A tree node as the step a user sees."""
    return StepView(text=n.text, code=n.code, output=n.output, error=n.error, score=n.prior)


def _rank(n: Node) -> float:
    return n.reward if n.reward is not None else (n.Q if n.N else 0.0)


def agreement_value(tree: Tree, node: Node) -> float:
    """Without a reward model or ground truth, an answer's value is how many finished answers
    agree with it: 2 * share - 1, in [-1, 1]."""
    answers = [normalize(n.answer) for n in tree.nodes if n.kind == "answer" and n.answer]
    if not answers or node.kind != "answer":
        return -1.0
    share = answers.count(normalize(node.answer)) / len(answers)
    return 2.0 * share - 1.0


def answer_matches_output(answer: str | None, stdout: str) -> bool:
    """Whether a final answer agrees with what the solution's last code printed: equivalent to
    its last line, or equal to one of that line's words (`The total is 42`)."""
    lines = [ln.strip() for ln in stdout.strip().splitlines() if ln.strip()]
    if answer is None or not lines:
        return True  # nothing printed: nothing to contradict
    last = lines[-1]
    if equivalent(last, answer):
        return True
    key = normalize(answer)
    return any(normalize(w) == key for w in last.replace(",", " ").split())


def gold_equivalent(gold: str, answer: str | None) -> bool:
    return equivalent(gold, answer)
