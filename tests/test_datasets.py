"""Selection rules for SFT trajectories, PPM pairs and pivotal pairs, on a hand-built tree
with hand-computed expected outputs."""

from __future__ import annotations

import pytest

from edgestar.train.datasets import coverage_diversity, pivotal_pairs, ppm_pairs, sft_examples


def node(i, parent, depth, kind, text, q, children=(), correct=None):
    return {
        "id": i,
        "parent": parent,
        "depth": depth,
        "kind": kind,
        "text": text,
        "Q": q,
        "N": 1,
        "children": list(children),
        "correct": correct,
    }


# root -> A (Q .5) -> {A1 correct (Q 1), A2 wrong (Q -1)}
#      -> B (Q 1)  -> B1 correct (Q 1)
#      -> C (error, Q -1)
TREE = {
    "prompt": "P|",
    "nodes": [
        node(0, None, 0, "root", "", 0.0, [1, 2, 3]),
        node(1, 0, 1, "code", "A|", 0.5, [4, 5]),
        node(2, 0, 1, "code", "B|", 1.0, [6]),
        node(3, 0, 1, "error", "C|", -1.0),
        node(4, 1, 2, "answer", "A1|", 1.0, correct=True),
        node(5, 1, 2, "answer", "A2|", -1.0, correct=False),
        node(6, 2, 2, "answer", "B1|", 1.0, correct=True),
    ],
}


def test_sft_top2_by_mean_q():
    ex = sft_examples(TREE, "p1")
    assert [(e.solution, e.mean_q) for e in ex] == [("B|B1|", 1.0), ("A|A1|", 0.75)]
    assert ex[0].prompt == "P|" and ex[0].problem_id == "p1"
    assert len(sft_examples(TREE, top_k=1)) == 1


def test_ppm_pairs_best_vs_worst_siblings_with_margin():
    got = [(p.prefix, p.chosen, p.rejected, p.q_chosen, p.q_rejected) for p in ppm_pairs(TREE)]
    assert got == [
        ("P|", "B|", "C|", 1.0, -1.0),
        ("P|", "A|", "C|", 0.5, -1.0),
        ("P|A|", "A1|", "A2|", 1.0, -1.0),
    ]
    # A margin of 1.6 keeps only the pairs 2 apart.
    assert len(ppm_pairs(TREE, margin=1.6)) == 2


def test_pivotal_pairs_in_the_uncertain_band():
    got = [
        (p.prefix, p.chosen, p.rejected, p.q_chosen, p.q_rejected, p.kind)
        for p in pivotal_pairs(TREE)
    ]
    assert got == [
        ("P|", "B|", "C|", 1.0, 0.0, "pivotal"),
        ("P|A|", "A1|", "A2|", 1.0, 0.0, "pivotal"),
    ]
    # A threshold above every jump finds nothing.
    assert pivotal_pairs(TREE, threshold=0.51) == []


def test_coverage_and_diversity():
    unsolved = {
        "prompt": "",
        "nodes": [
            node(0, None, 0, "root", "", 0.0, [1]),
            node(1, 0, 1, "answer", "x", -1.0, correct=False),
        ],
    }
    m = coverage_diversity([TREE, unsolved])
    assert m == {"problems": 2, "coverage": 0.5, "diversity": pytest.approx(1.0)}


def _tir_tree(code: str) -> dict:
    """One tir trajectory: the code block, then the boxed answer (right)."""
    node = {"output": None, "stdout": None, "error": None, "answer": None, "n_tokens": 1,
            "logprob": 0.0, "prior": None, "reward": None, "correct": None, "N": 1, "Q": 1.0}  # fmt: skip
    return {
        "question": "q",
        "prompt": "p",
        "nodes": [
            {**node, "id": 0, "parent": None, "depth": 0, "kind": "root", "text": "",
             "code": None, "children": [1]},
            {**node, "id": 1, "parent": 0, "depth": 1, "kind": "code",
             "text": f"```python\n{code}\n```\n", "code": code, "children": [2]},
            {**node, "id": 2, "parent": 1, "depth": 2, "kind": "answer",
             "text": "The answer is \\boxed{56}.", "code": None, "answer": "56",
             "correct": True, "children": []},
        ],
    }  # fmt: skip


def test_false_positive_rate_judges_the_answer_block_of_tir():
    """In tir the one code block prints the answer: an assignment it never reads (a right
    answer reached around a wasted line) is flagged; a block that uses all it assigns is not."""
    from edgestar.train.evolve import false_positive_rate

    clean = _tir_tree("total = 345 + 289 - 100\nprint(total)")
    wasted = _tir_tree("total = 345 + 289\ndifference = 345 - 289\nprint(difference)")
    assert false_positive_rate([{"tree": clean, "id": "a"}]) == 0.0
    assert false_positive_rate([{"tree": wasted, "id": "b"}]) == 1.0
    assert false_positive_rate([{"tree": clean, "id": "a"}, {"tree": wasted, "id": "b"}]) == 0.5
