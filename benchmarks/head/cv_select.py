"""Cross-validated answer selection on one `edgestar train head` run: every problem is scored by
a head fitted without it, so all of the run's problems count as held out.

    python benchmarks/head/cv_select.py RUN_DIR [--by problem|source] [--folds 5] [--skip SRC]

`--by problem`: folds of whole problems (seeded); `--by source`: leave one problem source out
(each source is scored by a head that never saw that generator family). Each fold's head is
fitted by `fit_head` with the run's config, except the loss and ridge grid given here (default:
the `outcome` loss, penalty chosen by inner cross-validation over the fold's training
problems, as `edgestar train head` does). Prints the answer-pair accuracy and, at k = 4 chains,
how many problems each selection rule of selection.py gets right on the same chains.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
from collections import defaultdict
from pathlib import Path

import numpy as np
from compare_fits import load_run  # this folder's run reader (run as a script from here)
from selection import RULES, chains, pick

from edgestar.train.head import answer_pairs, fit_head


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--by", choices=("problem", "source"), default="problem")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--k", type=int, default=4, help="chains per problem to choose among")
    ap.add_argument("--loss", default="outcome")
    ap.add_argument("--l2", default="0.1,0.3,1,3,10")
    ap.add_argument("--skip", action="append", default=[], help="a source to leave out entirely")
    a = ap.parse_args()
    cfg, states, recs = load_run(a.run)
    cfg = dataclasses.replace(cfg, loss=a.loss, l2=tuple(float(v) for v in a.l2.split(",")))
    rows = [i for i, r in enumerate(recs) if r["source"] not in a.skip]
    problems: dict[str, list[int]] = defaultdict(list)
    for i in rows:
        problems[recs[i]["problem"]].append(i)
    source = {p: recs[ix[0]]["source"] for p, ix in problems.items()}

    def fold(p: str) -> str:
        if a.by == "source":
            return source[p]
        h = hashlib.sha256(f"cv-select:{p}".encode()).digest()
        return str(int.from_bytes(h[:8], "little") % a.folds)

    scores = np.zeros(len(recs))
    for f in sorted({fold(p) for p in problems}):
        tr = [i for p, ix in problems.items() if fold(p) != f for i in ix]
        te = [i for p, ix in problems.items() if fold(p) == f for i in ix]
        head = fit_head(states[tr], [recs[i] for i in tr], cfg, "0" * 64, "cv")
        scores[te] = head.score(states[te])
        print(f"fold {f}: {len({recs[i]['problem'] for i in te})} problems, l2 {head.meta['l2']:g}")
    pairs = answer_pairs([recs[i] for i in rows])
    ok = sum(scores[rows[c]] > scores[rows[w]] for c, w in pairs)
    print(
        f"\n{len(problems)} problems; answer pairs {len(pairs)}, ordered right {ok / len(pairs):.3f}"
    )
    by_row = dict(enumerate(scores.tolist()))
    per = {p: chains(recs, ix)[: a.k] for p, ix in problems.items()}
    print(f"\n| source | problems | {' | '.join(RULES)} |\n|---|---|" + "---|" * len(RULES))
    for src in sorted(set(source.values())) + ["all"]:
        ps = [p for p in per if src in ("all", source[p])]
        hits = [sum(pick(per[p], by_row, rule) for p in ps) for rule in RULES]
        print(f"| {src} | {len(ps)} | " + " | ".join(map(str, hits)) + " |")


if __name__ == "__main__":
    main()
