"""SearchEvent: the hook `edgestar serve` streams from (progress and settled steps).

On the scripted 6 x 7 tree of test_search: greedy settles each step as it is decoded (before
the next expansion); MCTS, which tries the wrong first step first, settles nothing until it
stops and then exactly the chosen (right) path; beam settles what its live beams and answers
share; an exception raised by the hook stops the search.
"""

from __future__ import annotations

import pytest
from test_search import PPM, InProcessRunner, Q, make_script

from edgestar.backends.fake import ScriptedPolicy, ScriptedReward
from edgestar.formats import RSTAR
from edgestar.search import run_search
from edgestar.types import Budget, SearchConfig, SearchEvent


def _run(strategy: str, events: list[SearchEvent], **cfg):
    return run_search(
        Q,
        policy=ScriptedPolicy(make_script()),
        fmt=RSTAR,
        strategy=strategy,
        budget=Budget(rollouts=16),
        config=SearchConfig(**cfg),
        reward=ScriptedReward(PPM),
        runner=InProcessRunner(),
        on_event=events.append,
    )[0]


def _kinds(events: list[SearchEvent]) -> str:
    return "".join("S" if e.kind == "step" else "p" for e in events)


def test_greedy_settles_each_step_as_it_is_decoded():
    ev: list[SearchEvent] = []
    r = _run("greedy", ev)
    assert _kinds(ev) == "pS" * len(r.steps)  # every expansion settles its one new step
    assert [e.step for e in ev if e.kind == "step"] == list(r.steps)
    assert [e.index for e in ev if e.kind == "step"] == list(range(len(r.steps)))
    assert r.answer == "13"


def test_mcts_settles_the_chosen_path_only_when_it_stops():
    ev: list[SearchEvent] = []
    r = _run("mcts", ev, width=8)
    steps = [e.step for e in ev if e.kind == "step"]
    assert r.answer == "42" and steps == list(r.steps)
    first_step = _kinds(ev).index("S")
    assert set(_kinds(ev)[:first_step]) == {"p"} and set(_kinds(ev)[first_step:]) == {"S"}
    progress = [e for e in ev if e.kind == "progress"]
    assert len(progress) >= 3  # reported while it ran, counters rising
    assert [e.nodes for e in progress] == sorted(e.nodes for e in progress)
    assert "6 + 7" not in "".join(s.text for s in steps)  # the explored wrong path never shows


def test_beam_settles_shared_steps_and_ends_on_the_chosen_path():
    ev: list[SearchEvent] = []
    r = _run("beam", ev, width=8, beam_width=1)
    assert r.answer == "42"
    assert [e.step for e in ev if e.kind == "step"] == list(r.steps)
    # one beam: its first step is settled before the search expands it further
    assert _kinds(ev).index("S") < len(ev) - len(r.steps)


class _Stop(Exception):
    pass


def test_an_exception_from_the_hook_stops_the_search():
    seen: list[SearchEvent] = []

    def hook(e: SearchEvent) -> None:
        seen.append(e)
        if e.kind == "progress" and e.nodes >= 3:
            raise _Stop

    with pytest.raises(_Stop):
        run_search(
            Q,
            policy=ScriptedPolicy(make_script()),
            fmt=RSTAR,
            strategy="mcts",
            budget=Budget(rollouts=16),
            config=SearchConfig(width=8),
            runner=InProcessRunner(),
            on_event=hook,
        )
    assert seen[-1].kind == "progress"
