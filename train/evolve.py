"""Self-evolution, round after round (rStar-Math, Guan et al. 2025): problems -> rollouts ->
datasets -> policy SFT + PPM training -> evaluation -> round report.

Round 0 (bootstrap) fine-tunes the base on the problem generator's reference solutions, the
bootstrap teacher that stands in for rStar-Math's 236B model; for a LoRA recipe a GGUF adapter
trained that way before (`round0_adapter`, e.g. the shipped model's) can stand for it. Every later round searches
answer-only problems with the previous round's policy (and PPM, when the round asks for
PPM-augmented rollouts), keeps what execution and the final answer verify, and trains a new
policy from the BASE (as rStar-Math does) and a new PPM from that policy.

Run folder (`out_dir`):

    recipe.json            the recipe as run (a resumed run must match it)
    manifest.json          the stages done, with their summaries (rewritten atomically)
    problems/*.jsonl       test, bootstrap and per-round problems (train never shares a question
                           with test)
    base/                  the from-scratch base (tokenizer + random init), unless the recipe
                           names a checkpoint
    round{r}/rollouts/     trees-*.jsonl shards          round{r}/sft.jsonl, pairs.jsonl
    round{r}/perturbed.jsonl  execution-verified perturbed-step PPM pairs (recipe `perturbed`)
    round{r}/policy/, ppm/ checkpoints (+ policy.gguf, ppm.gguf when the backend is gguf)
                           with base.lora: policy/ is the adapter folder, policy.lora.gguf the
                           GGUF LoRA adapter that llama.cpp applies to the base GGUF (base.gguf
                           here when the base is an HF checkpoint)
    round{r}/eval/         evaluation on the fixed test split
    round{r}/report.json   the round's figures         report.md, rounds.png: all rounds

Every stage writes atomically and is recorded in the manifest only when complete; `resume=True`
skips finished stages, and training resumes from its saved state, so a run killed at any point
(kill -9) ends with the same checkpoints as an uninterrupted one (CPU, same thread count).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgestar.checkpoint import atomic_write_text, param_count
from edgestar.formats import RSTAR, get_format, solution_in
from edgestar.types import Budget, InputError, SearchConfig

from .datasets import (
    PreferencePair,
    SFTExample,
    coverage_diversity,
    pivotal_pairs,
    ppm_pairs,
    sft_examples,
)
from .recipe import Recipe, RoundSpec, SourceSpec
from .schema import ProblemRecord


@dataclass(frozen=True)
class EvolveReport:
    out_dir: Path
    rounds: tuple[dict[str, Any], ...]
    seconds: float


class _Run:
    def __init__(self, recipe: Recipe, out: Path, resume: bool, progress: bool,
                 ray_address: str | None, log: Callable[[str], None]) -> None:  # fmt: skip
        self.recipe, self.out, self.progress, self.ray = recipe, out, progress, ray_address
        self.log = log
        rec = _stable(_jsonable(dataclasses.asdict(recipe)))
        if rec.get("step_format") == "rstar":  # as before the key existed: runs keep resuming
            del rec["step_format"]
        rec_json = json.dumps(rec, sort_keys=True)
        self.recipe_hash = hashlib.sha256(rec_json.encode()).hexdigest()[:16]
        if out.exists() and any(out.iterdir()):
            if not resume:
                raise InputError(f"{out} exists; pass --resume to continue that run")
            m = self._read_manifest()
            if m.get("recipe_hash") != self.recipe_hash:
                raise InputError(f"{out} was made by a different recipe; use a new --out")
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "recipe.json", rec_json + "\n")
        self.manifest = self._read_manifest() or {"recipe_hash": self.recipe_hash, "stages": {}}
        self.manifest["recipe_hash"] = self.recipe_hash
        self.fmt = get_format(recipe.step_format)

    # ------------------------------------------------------------------ manifest
    def _read_manifest(self) -> dict[str, Any]:
        p = self.out / "manifest.json"
        if not p.is_file():
            return {}
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:
            raise InputError(f"{p} is corrupt; start a new run") from None

    def stage(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        done = self.manifest["stages"].get(name)
        if done is not None:
            return done
        self.log(f"[{self.recipe.name}] {name} ...")
        t0 = time.perf_counter()
        summary = fn()
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        self.manifest["stages"][name] = summary
        atomic_write_text(self.out / "manifest.json", json.dumps(self.manifest, indent=1) + "\n")
        return summary

    # ------------------------------------------------------------------ problems
    def _load(self, spec: SourceSpec, with_solution: bool) -> list[ProblemRecord]:
        from .problems import load_source

        return load_source(spec.source, spec.n, spec.seed, difficulty=spec.difficulty,
                           with_solution=with_solution)  # fmt: skip

    def problems(self) -> dict[str, Any]:
        from .problems import dedup, dedup_against, questions_in, write_jsonl

        r = self.recipe
        pdir = self.out / "problems"
        test = self._load(r.test, False)
        held = [q for f in r.exclude for q in questions_in(f)]  # evaluation sets: never trained
        sets: dict[str, list[ProblemRecord]] = {"test": test}
        drawn = 0
        if r.bootstrap is not None:
            boot = [p for s in r.bootstrap.problems for p in self._load(s, True)]
            drawn += len(boot)
            sets["bootstrap"] = dedup_against(boot, test, held)
        for i, rnd in enumerate(r.rounds, 1):
            probs = [p for s in rnd.problems for p in self._load(s, False)]
            # Answer-only: whatever the source wrote as a solution is not given to the run.
            probs = [dataclasses.replace(p, solution=None) for p in probs]
            drawn += len(probs)
            # two sources may draw the same question (same id): rollouts need each once
            sets[f"round{i}"] = dedup_against(dedup(probs), test, held)
        for name, ps in sets.items():
            write_jsonl(pdir / f"{name}.jsonl", ps)
        out: dict[str, Any] = {k: len(v) for k, v in sets.items()}
        out["dropped_as_test_or_excluded"] = drawn - sum(
            len(v) for k, v in sets.items() if k != "test"
        )
        return out

    def read_problems(self, name: str) -> list[ProblemRecord]:
        from .problems import read_jsonl

        return read_jsonl(self.out / "problems" / f"{name}.jsonl", ProblemRecord)

    # ------------------------------------------------------------------ base
    def base(self) -> dict[str, Any]:
        r = self.recipe
        if r.base.checkpoint is not None:
            return {"path": str(Path(r.base.checkpoint).resolve())}
        if r.base.gguf is not None:
            from edgestar.backends._llama_raw import check_gguf

            return {"path": str(check_gguf(r.base.gguf_path()).path.resolve())}
        from .tiny import TINY_PRESETS, build_tokenizer, default_texts, make_tiny_checkpoint

        cfg = TINY_PRESETS[r.base.preset] if isinstance(r.base.preset, str) else None
        if cfg is None:
            raise InputError(f"unknown base preset {r.base.preset!r}")
        texts = default_texts()
        if r.bootstrap is not None:
            texts += [p.solution for p in self.read_problems("bootstrap") if p.solution]
        vocab = r.base.tokenizer_vocab or cfg.vocab_size
        tok = build_tokenizer(texts, vocab_size=vocab, split_digits=cfg.split_digits)
        cfg = dataclasses.replace(cfg, seed=r.seed, vocab_size=vocab)
        path = make_tiny_checkpoint(self.out / "base", cfg, role="policy", tokenizer=tok)
        return {"path": str(path), "vocab": len(tok)}

    # ------------------------------------------------------------------ models
    def export(self, rdir: Path) -> dict[str, Any]:
        from edgestar.quantize.gguf_export import export_gguf

        out = {}
        if _is_adapter(rdir / "policy"):  # LoRA: the adapter travels, the base stays as it is
            from edgestar.quantize.lora_gguf import export_lora_gguf

            export_lora_gguf(rdir / "policy", rdir / "policy.lora.gguf", dtype="f32", force=True)
            out["policy_lora"] = (rdir / "policy.lora.gguf").stat().st_size
            out["base_gguf"] = str(self.base_gguf())
        for role in ("policy", "ppm"):
            if (rdir / role).is_dir() and not _is_adapter(rdir / role):
                export_gguf(rdir / role, rdir / f"{role}.gguf", dtype="f32", force=True)
                out[role] = (rdir / f"{role}.gguf").stat().st_size
        return out

    def model_path(self, rdir: Path, role: str) -> Path | None:
        if not (rdir / role).is_dir():
            return None
        if role == "policy" and _is_adapter(rdir / role):
            return self.base_gguf()  # with lora_path(rdir) applied
        if self.recipe.backend == "gguf":
            return rdir / f"{role}.gguf"
        return rdir / role

    def lora_path(self, rdir: Path) -> Path | None:
        """The round's GGUF LoRA adapter (applied to `base_gguf()`), or None."""
        return rdir / "policy.lora.gguf" if _is_adapter(rdir / "policy") else None

    def base_gguf(self) -> Path:
        """The GGUF the adapters apply to: base.gguf itself, or the HF base exported once."""
        b = self.recipe.base
        if b.gguf is not None:
            return b.gguf_path().resolve()
        out = self.out / "base.gguf"
        if not out.is_file():
            from edgestar.quantize.gguf_export import export_gguf

            assert b.checkpoint is not None
            export_gguf(b.checkpoint, out, dtype="f32", force=True)
        return out

    # ------------------------------------------------------------------ evaluation
    def head(self, i: int, rnd: RoundSpec, rdir: Path) -> dict[str, Any]:
        """Round i's reward head on its own policy's hidden states (train/head.py)."""
        from .head import train_head

        assert rnd.head is not None
        pol = self.model_path(rdir, "policy")
        if pol is None or pol.suffix != ".gguf":
            raise InputError("a round's head reads a GGUF policy's hidden states: backend gguf")
        cfg = dataclasses.replace(rnd.head, step_format=self.recipe.step_format,
                                  threads=self.recipe.threads, seed=self.recipe.seed * 1000 + i,
                                  exclude=self.recipe.exclude)  # fmt: skip
        rep = train_head(pol, rdir / "head", cfg, progress=self.progress, ray_address=self.ray,
                         lora=self.lora_path(rdir))  # fmt: skip
        o = rep.overall
        return {"train_nodes": rep.train_nodes, "train_pairs": rep.train_pairs,
                "heldout_pairs": o.pairs, "pairwise_accuracy": o.pairwise_accuracy,
                "auroc": o.auroc, "solved_share": rep.solved_share,
                "collect_seconds": rep.collect_seconds}  # fmt: skip

    def evaluate(self, rdir: Path) -> dict[str, Any]:
        from edgestar.backends.loader import open_policy, open_reward
        from edgestar.head import HeadReward
        from edgestar.solver import Solver

        from .evaluate import evaluate

        ev = self.recipe.eval
        test = self.read_problems("test")[: ev.n]
        pol = self.model_path(rdir, "policy")
        assert pol is not None
        ppm = self.model_path(rdir, "ppm")
        policy = open_policy(pol, "cpu", self.recipe.threads, 2048, lora=self.lora_path(rdir))
        reward: Any = open_reward(ppm, "cpu", self.recipe.threads, 2048) if ppm else None
        head = rdir / "head" / "head.npz"
        if reward is None and head.is_file():  # the round's head ranks the search
            reward = HeadReward(policy, head, model_path=pol, adapter_path=self.lora_path(rdir))
        cfg = SearchConfig(width=ev.width, max_step_tokens=ev.max_step_tokens,
                           temperature=ev.temperature)  # fmt: skip
        with Solver(policy, reward, step_format=self.fmt.name, config=cfg) as solver:
            rep = evaluate(solver, test, ev.strategies, (Budget(rollouts=ev.rollouts),),
                           seed=self.recipe.seed, out_dir=rdir / "eval", force=True,
                           progress=self.progress)  # fmt: skip
        return (
            {c.strategy: round(c.accuracy, 4) for c in rep.cells}
            | {f"{c.strategy}_coverage": round(c.coverage, 4) for c in rep.cells}
            | {f"{c.strategy}_tokens": c.mean_tokens for c in rep.cells}
        )

    # ------------------------------------------------------------------ rounds
    def bootstrap_round(self, base: str, adapter: Path | None = None) -> None:
        from .sft import train_policy

        rnd = self.recipe.bootstrap
        assert rnd is not None
        rdir = self.out / "round0"
        if adapter is not None:
            self.import_round0(base, adapter, rdir)

        def sft() -> dict[str, Any]:
            exs = self.reference_examples()
            rep = train_policy(base, exs, rdir / "policy", rnd.sft, resume=True,
                               progress=self.progress, step_format=self.sft_format)  # fmt: skip
            return {"examples": len(exs), "final_loss": rep.final_loss, "tokens": rep.tokens,
                    "train_seconds": rep.seconds}  # fmt: skip

        self.stage("round0.sft", sft)
        self.stage("round0.export", lambda: self.export(rdir))
        if rnd.head is not None:
            self.stage("round0.head", lambda: self.head(0, rnd, rdir))
        self.stage("round0.eval", lambda: self.evaluate(rdir))
        self.stage("round0.report", lambda: self.round_report(0, rdir))

    def import_round0(self, base: str, adapter: Path, rdir: Path) -> None:
        """Round 0 is `adapter` (a GGUF LoRA adapter of this recipe's LoRA settings, e.g. the
        shipped model's) instead of the bootstrap SFT; the bootstrap's problems are still drawn,
        as the rounds replay their references. A run that imported one adapter refuses another."""
        from edgestar.head import file_sha256

        from .lora import adapter_from_gguf

        lora = self.recipe.base.lora_spec
        if lora is None:
            raise InputError("--round0-adapter needs a recipe whose base trains a LoRA adapter")
        sha = file_sha256(adapter)
        done = self.manifest["stages"].get("round0.sft")
        if done is not None:
            if done.get("imported_sha256") != sha:
                raise InputError(
                    f"{self.out}: round 0 is not {adapter} (it was trained or imported from "
                    "another adapter); use a new --out"
                )
            return

        def imported() -> dict[str, Any]:
            adapter_from_gguf(base, adapter, lora, rdir / "policy", step_format=self.sft_format,
                              seed=self.recipe.seed)  # fmt: skip
            return {"examples": 0, "imported": str(adapter.resolve()), "imported_sha256": sha}

        self.stage("round0.sft", imported)

    def reference_examples(self) -> list[SFTExample]:
        """The bootstrap problems' reference solutions, in the recipe's step format."""
        probs = [p for p in self.read_problems("bootstrap") if p.solution]
        prompts = self.prompts([p.question for p in probs])
        return [SFTExample(p.id, q, solution_in(self.fmt, p.solution or ""), 1.0)
                for p, q in zip(probs, prompts, strict=True)]  # fmt: skip

    @property
    def sft_format(self) -> str | None:
        """The format to train in, when the base does not declare it (a third-party model)."""
        return None if self.fmt.name == "rstar" else self.fmt.name

    def prompts(self, questions: list[str]) -> list[str]:
        """The questions as the policy sees them: the format's prompt, through the base's own
        chat template rendered by the llama.cpp backend (as the rollouts render it)."""
        if not self.fmt.chat or not questions:
            return [self.fmt.prompt(q) for q in questions]
        from edgestar.backends.loader import open_policy

        with open_policy(self.base_gguf(), "cpu", 1, 512) as pol:
            return [self.fmt.prompt(q, pol.chat_prompt) for q in questions]

    def evolve_round(self, i: int, rnd: RoundSpec, base: str) -> None:
        from .ppm_train import train_ppm
        from .rollouts import read_trees, run_rollouts
        from .sft import train_policy

        prev, rdir = self.out / f"round{i - 1}", self.out / f"round{i}"
        pol_prev, ppm_prev = self.model_path(prev, "policy"), self.model_path(prev, "ppm")
        assert pol_prev is not None
        rcfg = dataclasses.replace(rnd.rollouts, seed=self.recipe.seed * 1000 + i,
                                   threads=self.recipe.threads)  # fmt: skip
        if rcfg.use_ppm and ppm_prev is None:
            raise InputError(
                f"round {i} asks for PPM-augmented rollouts but round {i - 1} has no PPM"
            )

        def rollouts() -> dict[str, Any]:
            s = run_rollouts(self.read_problems(f"round{i}"), pol_prev, rdir / "rollouts", rcfg,
                             ppm_path=ppm_prev if rcfg.use_ppm else None,
                             ray_address=self.ray, progress=self.progress,
                             lora_path=self.lora_path(prev))  # fmt: skip
            return {"problems": s.problems, "solved": s.solved,
                    "solved_share": round(s.solved_share, 4),
                    "tokens_generated": s.tokens_generated, "tokens_evaluated": s.tokens_evaluated}  # fmt: skip

        self.stage(f"round{i}.rollouts", rollouts)

        def datasets() -> dict[str, Any]:
            trees = read_trees(rdir / "rollouts")
            sft = [e for t in trees for e in sft_examples(t["tree"], str(t["id"]))]
            pairs = [
                p for t in trees for p in ppm_pairs(t["tree"], str(t["id"]), margin=rnd.pair_margin)
            ]
            piv = [p for t in trees for p in pivotal_pairs(t["tree"], str(t["id"]))]
            _write(rdir / "sft.jsonl", [dataclasses.asdict(e) for e in sft])
            _write(rdir / "pairs.jsonl", [p.to_json() for p in pairs])
            _write(rdir / "pivotal.jsonl", [p.to_json() for p in piv])
            cd = coverage_diversity(t["tree"] for t in trees)
            return {"sft_examples": len(sft), "ppm_pairs": len(pairs), "pivotal_pairs": len(piv),
                    "coverage": round(cd["coverage"], 4), "diversity": round(cd["diversity"], 4),
                    "false_positive_rate": round(false_positive_rate(trees), 4)}  # fmt: skip

        self.stage(f"round{i}.datasets", datasets)
        if rnd.perturbed:
            self.stage(f"round{i}.perturbed", lambda: self.perturbed(i, rnd, rdir))

        def sft() -> dict[str, Any]:
            exs = self.sft_data(i, rnd)
            start, init = base, None
            if rnd.sft_init == "previous":  # a LoRA round keeps the base, continues the adapter
                start, init = (base, prev / "policy") if rnd.sft.lora else (prev / "policy", None)
            rep = train_policy(start, exs, rdir / "policy", rnd.sft, resume=True,
                               progress=self.progress, step_format=self.sft_format,
                               init_adapter=init)  # fmt: skip
            return {"examples": len(exs), "final_loss": rep.final_loss, "tokens": rep.tokens,
                    "train_seconds": rep.seconds}  # fmt: skip

        self.stage(f"round{i}.sft", sft)
        if rnd.ppm is not None:
            ppm_cfg = rnd.ppm

            def ppm() -> dict[str, Any]:
                pairs = [PreferencePair(**d) for d in _read(rdir / "pairs.jsonl")]
                if (rdir / "perturbed.jsonl").is_file():
                    pairs += [PreferencePair(**d) for d in _read(rdir / "perturbed.jsonl")]
                if not pairs:
                    return {"pairs": 0, "skipped": "no preference pairs"}
                rep = train_ppm(rdir / "policy", pairs, rdir / "ppm", ppm_cfg, resume=True,
                                progress=self.progress)  # fmt: skip
                last = rep.eval_metrics[-1] if rep.eval_metrics else {}
                out = {"pairs": len(pairs), "final_loss": rep.final_loss, "tokens": rep.tokens,
                       "pairwise_accuracy": last.get("pairwise_accuracy"),
                       "train_seconds": rep.seconds}  # fmt: skip
                for k, v in last.items():  # per pair kind, measured on the held-out split
                    if k.startswith("held_"):
                        out[k] = int(v)
                    elif k.startswith("pairwise_accuracy_"):
                        out[k] = round(v, 4)
                return out

            self.stage(f"round{i}.ppm", ppm)
        self.stage(f"round{i}.export", lambda: self.export(rdir))
        if rnd.head is not None:
            self.stage(f"round{i}.head", lambda: self.head(i, rnd, rdir))
        self.stage(f"round{i}.eval", lambda: self.evaluate(rdir))
        self.stage(f"round{i}.report", lambda: self.round_report(i, rdir))

    def perturbed(self, i: int, rnd: RoundSpec, rdir: Path) -> dict[str, Any]:
        """Execution-verified perturbed-step pairs for the PPM (train/negatives.py): from this
        round's correct trajectories first, then from the earlier data in a seeded order."""
        from .negatives import Solved, perturbed_pairs

        def solved(name: str, sft: Path) -> list[Solved]:
            ans = {p.id: p.answer for p in self.read_problems(name)}
            return [Solved(e["problem_id"], e["prompt"], e["solution"], ans[e["problem_id"]])
                    for e in _read(sft) if ans.get(e["problem_id"]) is not None]  # fmt: skip

        earlier: list[Solved] = []
        if self.recipe.bootstrap is not None:  # perturbed pairs are rstar-only (recipe.py)
            earlier += [Solved(p.id, RSTAR.prompt(p.question), p.solution, p.answer)
                        for p in self.read_problems("bootstrap") if p.solution]  # fmt: skip
        for j in range(1, i):
            earlier += solved(f"round{j}", self.out / f"round{j}" / "sft.jsonl")
        random.Random(self.recipe.seed * 104729 + i).shuffle(earlier)
        mine = solved(f"round{i}", rdir / "sft.jsonl")
        this_round = {s.problem_id for s in mine}
        pool = mine + earlier
        pairs = perturbed_pairs(pool, rnd.perturbed, seed=self.recipe.seed * 1000 + i)
        _write(rdir / "perturbed.jsonl", [p.to_json() for p in pairs])
        return {"pairs": len(pairs),
                "from_round": sum(p.problem_id in this_round for p in pairs)}  # fmt: skip

    def sft_data(self, i: int, rnd: RoundSpec) -> list[SFTExample]:
        earlier: list[SFTExample] = []
        if rnd.sft_data == "accumulate" or rnd.replay:
            if self.recipe.bootstrap is not None:
                earlier += self.reference_examples()
            for j in range(1, i):
                earlier += [SFTExample(**d) for d in _read(self.out / f"round{j}" / "sft.jsonl")]
        if rnd.sft_data == "round" and len(earlier) > rnd.replay:
            earlier = random.Random(self.recipe.seed * 7919 + i).sample(earlier, rnd.replay)
        return earlier + [SFTExample(**d) for d in _read(self.out / f"round{i}" / "sft.jsonl")]

    # ------------------------------------------------------------------ reports
    def round_report(self, i: int, rdir: Path) -> dict[str, Any]:
        st = self.manifest["stages"]
        rep: dict[str, Any] = {"round": i}
        for key in ("rollouts", "datasets", "perturbed", "sft", "ppm", "head", "eval", "export"):
            if f"round{i}.{key}" in st:
                rep[key] = st[f"round{i}.{key}"]
        params = param_count(rdir / "policy")
        if _is_adapter(rdir / "policy"):  # the base runs every token; the adapter rides along
            rep["adapter_params"] = _safetensors_params(
                rdir / "policy" / "adapter_model.safetensors"
            )
            params = _gguf_params(self.base_gguf()) + rep["adapter_params"]
        gen = rep.get("rollouts", {}).get("tokens_generated", 0)
        trained = rep.get("sft", {}).get("tokens", 0) + rep.get("ppm", {}).get("tokens", 0)
        rep["compute"] = {
            "policy_params": params,
            "tokens_generated": gen,
            # Generation: 2P FLOPs per token (Smaller-Weaker-Yet-Better); training: 6P per token.
            "flops_estimate": float(2 * params * gen + 6 * params * trained),
            "wall_seconds": round(
                sum(v.get("seconds", 0) for k, v in st.items() if k.startswith(f"round{i}.")), 2
            ),  # fmt: skip
        }
        atomic_write_text(rdir / "report.json", json.dumps(rep, indent=1) + "\n")
        self.manifest["stages"][f"round{i}.report"] = {"round": i}
        self.write_run_report()
        return {"round": i}

    def write_run_report(self) -> None:
        rows = []
        for d in sorted(self.out.glob("round*/report.json"), key=lambda p: int(p.parent.name[5:])):
            rows.append(json.loads(d.read_text()))
        atomic_write_text(self.out / "report.md", run_report_markdown(self.recipe.name, rows))
        plot_rounds(rows, self.out / "rounds.png")


def run_report_markdown(name: str, rows: list[dict[str, Any]]) -> str:
    lines = [
        f"# {name}: rounds",
        "",
        "| round | problems solved | greedy acc | mcts acc | PPM (head) pairwise acc | SFT examples | "
        "PPM pairs | coverage | diversity | FPR (est.) | tokens generated | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def f(v: Any, pct: bool = False) -> str:
        if v is None:
            return "-"
        return f"{v:.1%}" if pct else str(v)

    for r in rows:
        ro, ds, ev = r.get("rollouts", {}), r.get("datasets", {}), r.get("eval", {})
        lines.append(
            f"| {r['round']} | {f(ro.get('solved_share'), True)} | {f(ev.get('greedy'), True)} | "
            f"{f(ev.get('mcts'), True)} | {_reward_acc(r)} | "
            f"{f(ds.get('sft_examples') or r.get('sft', {}).get('examples'))} | "
            f"{_pairs(ds, r.get('perturbed', {}))} | {f(ds.get('coverage'), True)} | "
            f"{f(ds.get('diversity'))} | {f(ds.get('false_positive_rate'), True)} | "
            f"{f(r['compute']['tokens_generated'])} | {f(r['compute']['wall_seconds'])} |"
        )
    lines += [
        "",
        "FPR (est.): share of SFT-selected correct trajectories with a step whose code defines "
        "nothing a later step or the printed answer uses, or whose PPM score is below 0 (when the "
        "round's rollouts were PPM-scored). FLOPs: 2P per generated token + 6P per trained token.",
        "PPM pairs: from the MCTS trees (+ execution-verified perturbed steps, when the recipe asks).",
    ]
    return "\n".join(lines) + "\n"


def _reward_acc(r: dict[str, Any]) -> str:
    """The round's PPM pairwise accuracy, else its head's in parentheses, else '-'."""
    ppm = _ppm_acc(r.get("ppm", {}))
    if ppm is not None:
        return f"{ppm:.1%}"
    head = r.get("head", {}).get("pairwise_accuracy")
    return "-" if head is None else f"({head:.1%})"


def _ppm_acc(ppm: dict[str, Any]) -> float | None:
    """Held-out accuracy on the MCTS-tree pairs when measured apart, else on all held pairs."""
    return ppm.get("pairwise_accuracy_ppm", ppm.get("pairwise_accuracy"))


def _pairs(ds: dict[str, Any], pert: dict[str, Any]) -> str:
    if ds.get("ppm_pairs") is None:
        return "-"
    return f"{ds['ppm_pairs']} + {pert['pairs']}" if pert.get("pairs") else str(ds["ppm_pairs"])


def plot_rounds(rows: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["round"] for r in rows]
    for key, label in (("greedy", "greedy (policy only)"), ("mcts", "MCTS search")):
        ax.plot(xs, [r.get("eval", {}).get(key) for r in rows], marker="o", label=label)
    solved = [r.get("rollouts", {}).get("solved_share") for r in rows]
    ax.plot(xs, solved, marker="s", linestyle="--", label="train problems solved")
    ax.set_xlabel("round")
    ax.set_ylabel("accuracy / share")
    ax.set_ylim(0, 1)
    ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def false_positive_rate(trees: list[dict[str, Any]]) -> float:
    """Estimated share of correct trajectories reached through a flawed step: a step whose code
    assigns names that no later code reads (an irrelevant step), a name the answer-printing
    code step (tir's one block) assigns and never reads, or a step the PPM scored below 0 (when
    the tree was PPM-scored). Only the SFT-selected trajectories are judged."""
    import ast

    flagged = total = 0
    for t in trees:
        for ex in sft_examples(t["tree"], str(t["id"])):
            total += 1
            nodes = {n["id"]: n for n in t["tree"]["nodes"]}
            path = _path_for(nodes, ex.solution)
            bad = any(n.get("prior") is not None and n["prior"] < 0 for n in path)
            codes = [c for c in (n.get("code") or "" for n in path) if c.strip()]
            for k, code in enumerate(codes):
                try:
                    stored = _names(code, ast.Store)
                    later = {x for c in codes[k + 1 :] for x in _names(c, ast.Load)}
                    own = _names(code, ast.Load)
                except SyntaxError:
                    continue
                if k < len(codes) - 1:  # an earlier step: nothing it assigns is read later
                    bad = bad or bool(stored and not stored & later)
                else:  # the step that prints the answer (tir's one block): an unread name
                    bad = bad or bool(stored - own)
            flagged += bad
    return flagged / total if total else 0.0


def _names(code: str, ctx: type) -> set[str]:
    import ast

    return {
        x.id
        for x in ast.walk(ast.parse(code))
        if isinstance(x, ast.Name) and isinstance(x.ctx, ctx)
    }


def _path_for(nodes: dict[int, dict[str, Any]], solution: str) -> list[dict[str, Any]]:
    path, cur, rest = [], nodes[0], solution
    while rest:
        nxt = next((nodes[c] for c in cur["children"] if rest.startswith(nodes[c]["text"])), None)
        if nxt is None or not nxt["text"]:
            break
        path.append(nxt)
        rest = rest[len(nxt["text"]) :]
        cur = nxt
    return path


def _stable(x: Any) -> Any:
    """The recipe dict without the later keys (`lora`, `gguf`, a round's `head`, `exclude`)
    where they are unset, so runs started before those fields existed keep their recipe hash
    (and resume)."""
    if isinstance(x, dict):
        return {
            k: _stable(v)
            for k, v in x.items()
            if not (k in ("lora", "gguf", "head") and v is None) and not (k == "exclude" and not v)
        }
    if isinstance(x, list):
        return [_stable(v) for v in x]
    return x


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _safetensors_params(path: Path) -> int:
    import math

    from safetensors import safe_open

    with safe_open(str(path), "np") as sf:
        return sum(math.prod(sf.get_slice(k).get_shape()) for k in sf.keys())  # noqa: SIM118


def _gguf_params(path: Path) -> int:
    import gguf

    return int(sum(int(t.n_elements) for t in gguf.GGUFReader(path).tensors))


def _is_adapter(folder: Path) -> bool:
    return (folder / "adapter_config.json").is_file()


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def evolve(
    recipe: Recipe,
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    ray_address: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    round0_adapter: str | os.PathLike[str] | None = None,
) -> EvolveReport:
    """Run (or resume) every round of `recipe` into `out_dir`. `round0_adapter`: a GGUF LoRA
    adapter that stands for round 0 instead of the bootstrap SFT (a LoRA recipe; the rounds
    continue it)."""
    import sys

    t0 = time.perf_counter()
    run = _Run(recipe, Path(out_dir), resume, progress, ray_address,
               log or (lambda s: print(s, file=sys.stderr)))  # fmt: skip
    run.stage("problems", run.problems)
    base = run.stage("base", run.base)["path"]
    if round0_adapter is not None and recipe.bootstrap is None:
        raise InputError("--round0-adapter stands for a bootstrap round; this recipe has none")
    if recipe.bootstrap is not None:
        run.bootstrap_round(base, None if round0_adapter is None else Path(round0_adapter))
    elif recipe.base.checkpoint is not None:
        # No bootstrap: round 0 is the base itself.
        r0 = run.out / "round0"
        if not (r0 / "policy").exists():
            r0.mkdir(parents=True, exist_ok=True)
            (r0 / "policy").symlink_to(Path(base).resolve())
        run.stage("round0.export", lambda: run.export(r0))
    for i, rnd in enumerate(recipe.rounds, 1):
        run.evolve_round(i, rnd, base)
    rows = tuple(
        json.loads(p.read_text())
        for p in sorted(run.out.glob("round*/report.json"), key=lambda p: int(p.parent.name[5:]))
    )
    return EvolveReport(out_dir=run.out, rounds=rows, seconds=round(time.perf_counter() - t0, 2))
