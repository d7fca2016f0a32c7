"""The embedded-library entry point: `load()` a model, then `Solver.solve()` questions.

    import edgestar
    solver = edgestar.load("models/edgestar-tiny")          # or model="x.gguf", ppm=...
    result = solver.solve("What is 12 + 30?", strategy="mcts", budget=edgestar.Budget(rollouts=8))
    print(result.answer, result.stats.seconds)

Backends are chosen by what is loaded: a `.gguf` file runs on llama.cpp, an ONNX folder on
ONNX Runtime, a Hugging Face checkpoint folder on torch (only if torch is installed: the default
install does not need it). Heavy modules are imported here lazily, inside functions.

Thread-safety: one Solver runs one search at a time; `solve` holds a lock, so calls from several
threads are serialised rather than corrupting the model's state. For parallel solving, load one
Solver per thread (models are not shared between Solvers).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .backends.base import Policy, Reward
from .backends.loader import open_policy, open_reward
from .bundle import Bundle, default_bundle_path, read_bundle, shipped_bundles
from .formats import StepFormat, get_format
from .head import HeadReward, find_head, is_head_path
from .profiles import PROFILES
from .pull import is_model_name, resolve_model
from .search import run_search
from .types import (
    Budget,
    InputError,
    ModelError,
    SearchConfig,
    SearchEvent,
    SolveResult,
    check_question,
)

DEVICES = ("auto", "cpu", "cuda")


class Solver:
    """A policy (and optionally a PPM) ready to search. Close it to free the models."""

    def __init__(
        self,
        policy: Policy,
        reward: Reward | None = None,
        *,
        step_format: str | StepFormat = "rstar",
        config: SearchConfig | None = None,
        budget: Budget | None = None,
        strategy: str = "mcts",
        executor: Any = None,
    ) -> None:
        self.policy = policy
        self.reward = reward
        self.format = get_format(step_format) if isinstance(step_format, str) else step_format
        self.config = config or SearchConfig()
        self.budget = budget or Budget()
        self.strategy = strategy
        self._executor = executor
        self._own_executor = executor is None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def executor(self) -> Any:
        if self._executor is None and self.format.executes_code:
            from .executor import Executor

            self._executor = Executor()
        return self._executor

    def solve(
        self,
        question: str,
        strategy: str | None = None,
        budget: Budget | None = None,
        seed: int = 0,
        config: SearchConfig | None = None,
        gold: str | None = None,
        keep_tree: bool = True,
        on_event: Callable[[SearchEvent], None] | None = None,
    ) -> SolveResult:
        """Search for the answer to `question`. See SolveResult for what comes back.
        `on_event` is called, in this thread, with progress after every expansion and with each
        step of the chosen path once it is settled (SearchEvent); an exception it raises stops
        the search and comes out of `solve`."""
        question = check_question(question)
        with self._lock:
            if self._closed:
                raise InputError("this Solver is closed")
            result, _ = run_search(
                question,
                policy=self.policy,
                fmt=self.format,
                strategy=strategy or self.strategy,
                budget=budget or self.budget,
                config=config or self.config,
                reward=self.reward,
                runner=self.executor,
                seed=seed,
                gold=gold,
                keep_tree=keep_tree,
                on_event=on_event,
            )
        return result

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for obj in (self.policy, self.reward):
                if obj is not None:
                    obj.close()
            if self._own_executor and self._executor is not None:
                self._executor.close()

    def __enter__(self) -> Solver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise InputError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device != "auto":
        return device
    try:
        import llama_cpp

        if llama_cpp.llama_supports_gpu_offload():
            return "cuda"
    except Exception:
        pass
    return "cpu"


def _format_of(path: Path) -> str | None:
    """The step format a model declares (edgestar.json or GGUF metadata), if any."""
    if path.is_dir() and (path / "edgestar.json").is_file():
        from .checkpoint import read_meta

        return read_meta(path).step_format
    if path.is_file() and path.suffix == ".gguf":
        from .gguf_meta import read_string_kv

        return read_string_kv(path, "edgestar.step_format")
    return None


def _has_chat_template(path: Path) -> bool:
    """Whether a model carries a chat template (GGUF metadata or tokenizer_config.json)."""
    if path.is_file() and path.suffix == ".gguf":
        from .gguf_meta import read_string_kv

        return bool(read_string_kv(path, "tokenizer.chat_template"))
    if path.is_dir() and (path / "chat_template.jinja").is_file():
        return True
    cfg = path / "tokenizer_config.json"
    if path.is_dir() and cfg.is_file():
        import json

        try:
            return bool(json.loads(cfg.read_text(encoding="utf-8")).get("chat_template"))
        except (OSError, ValueError):
            return False
    return False


def auto_format(path: str | os.PathLike[str]) -> str:
    """`--format auto`: the format a model declares (edgestar's own models: rstar), else `tir`
    for a chat model (it has a chat template), else `plain`."""
    p = Path(path)
    return _format_of(p) or ("tir" if _has_chat_template(p) else "plain")


def load(
    bundle: str | os.PathLike[str] | None = None,
    *,
    model: str | os.PathLike[str] | None = None,
    ppm: str | os.PathLike[str] | None = None,
    step_format: str | None = None,
    device: str = "auto",
    threads: int | None = None,
    n_ctx: int | None = None,
    encoding: str = "gguf",
    lora: str | os.PathLike[str] | None = None,
) -> Solver:
    """Load a bundle (default: the one shipped with edgestar) or a bare model file, ready to
    solve. `model` (or `bundle`) may also name a model fetched by `edgestar pull`, a registry
    name or OWNER/REPO/FILE.gguf, found in the hub cache without any network call; its registry
    entry gives the default step format. `model`/`ppm` take a .gguf file or a checkpoint folder
    (`ppm` also a head file bound to the `model` GGUF, `edgestar train head`, or an
    off-the-shelf PRM GGUF, `edgestar.prm`: FILE.gguf, or FAMILY:FILE.gguf when its metadata
    does not name the family; "none": no reward model, not even a shipped head made for
    `model`); `step_format` is 'rstar', 'tir',
    'plain' or 'auto' (the default: what the model declares, else 'tir' for a model with a
    chat template, else 'plain'; for a bundle, the bundle's format). A bundle's device profile sets
    threads, context size and GPU layers unless they are given here. `lora`: a GGUF LoRA adapter
    (quantize/lora_gguf.py) that llama.cpp applies to the `model` GGUF at load time. A bare
    model's default search: best-of-8 chains in `tir` (chat models), each starting inside a
    code block (`SearchConfig.code_first`), voted by count (`select='count'`: a reward model,
    when there is one, scores the steps but does not pick); greedy in `plain`; MCTS in
    `rstar`."""
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InputError(f"threads must be a positive integer, got {threads!r}")
    dev = _resolve_device(device)
    if (
        model is None
        and isinstance(bundle, (str, os.PathLike))
        and str(bundle) not in shipped_bundles()
        and is_model_name(str(bundle))
    ):
        model, bundle = bundle, None  # edgestar.load("qwen2.5-0.5b-instruct"): a pulled model
    if lora is not None and model is None:
        raise InputError("a LoRA adapter needs a base model (--model FILE.gguf)")
    no_reward = ppm is not None and str(ppm) == "none"
    if no_reward:
        ppm = None
    if model is not None:
        if bundle is not None:
            raise InputError("give either a bundle or a model, not both")
        mpath, spec = resolve_model(model)  # a registry name: its file in the hub cache
        auto = spec.step_format if spec else None
        fmt = step_format if step_format not in (None, "auto") else auto or auto_format(mpath)
        get_format(fmt)
        ctx = n_ctx or 4096
        if ppm is None and not no_reward and spec is not None and spec.head is not None:
            ppm = next((d / spec.head for d in _head_dirs() if (d / spec.head).is_file()), None)
        if (
            ppm is None
            and not no_reward
            and lora is None
            and mpath.suffix == ".gguf"
            and mpath.is_file()
        ):
            # a shipped head made for this very file (not for it with an adapter applied)
            ppm = find_head(mpath, _head_dirs())
        adapter = Path(lora) if lora else None
        policy = open_policy(mpath, dev, threads, ctx, lora=adapter)
        try:
            reward = _open_ppm(ppm, policy, mpath, dev, threads, ctx, adapter=adapter)
        except BaseException:
            policy.close()
            raise
        if fmt != "tir":  # edgestar's own (rstar): MCTS, which its PPM was trained for;
            # a model with no chat template (plain): greedy, no search measured to pay there
            return Solver(
                policy, reward, step_format=fmt, strategy="mcts" if fmt == "rstar" else "greedy"
            )
        # A chat model in tir: 8 chains decoded together (the first greedy), each opened inside
        # a ```python block by the runtime (code_first): a small chat model that writes words
        # first does its arithmetic in its head. A counted vote, stopped once decided, its ties
        # going to the chain the policy was surest of (select 'count'); a reward model, when
        # there is one (a head, as models/heads/ holds for Qwen2.5-Coder-0.5B Q4_K_M, or a
        # PRM), scores every step for the user to see but does not pick. On
        # Qwen2.5-Coder-0.5B (2-core CPU, 2 threads), chosen on 36 development problems
        # (greedy 25 -> 30 with code first, best-of-8 33-34) and then measured on a fresh
        # 64-problem suite: the greedy chain 48 with code first against 35 without; best-of-8
        # majority 53, weighted by the shipped head 51. That head was trained on the model's
        # own first steps; on code-first chains it orders right above wrong answers of one
        # problem at chance (48 of 86 pairs, against 0.84 on the chains it was trained on),
        # and no rule that reads it beat the count: over those 100 problems weighted 85, the
        # count 86 (85 with the head breaking its ties); 67 against 69 on 84 more at 4
        # chains. On another fresh suite the count answered 54 of 64 at a median of 22.2 s
        # (benchmarks/qwen2.5-coder-0.5b/report.md, "Code first" and "The count replaces the
        # head's vote"; benchmarks/head/README.md). A chain that has generated 600 tokens
        # without an answer ends (max_chain_tokens): in this model's head-training rollouts
        # no chain past 600 tokens answered right (0 of 14; `benchmarks/head/chain_lengths.py`),
        # and the vote waited for them.
        return Solver(
            policy, reward, step_format=fmt, strategy="best_of_n", budget=Budget(rollouts=8),
            config=SearchConfig(n=8, select="count", max_chain_tokens=600, code_first=True),
        )  # fmt: skip
    if bundle is None:
        found = default_bundle_path()
        if found is None:
            raise ModelError(
                "no default model is installed: pass --bundle DIR (make one with "
                "`edgestar deploy`) or --model FILE.gguf --format plain"
            )
        bundle = found
    b = read_bundle(bundle)
    return _load_bundle(
        b, dev, threads, n_ctx, None if step_format == "auto" else step_format, encoding
    )


def _head_dirs() -> list[Path]:
    """Where shipped heads live: models/heads in a checkout, edgestar/models/heads installed."""
    here = Path(__file__).resolve().parent
    return [here / "models" / "heads", here.parent / "models" / "heads"]


def _open_ppm(
    ppm: str | os.PathLike[str] | None,
    policy: Policy,
    model: Path,
    dev: str,
    threads: int | None,
    n_ctx: int,
    ngl: int = -1,
    adapter: Path | None = None,
) -> Reward | None:
    """The reward for `policy`: a PPM model, an off-the-shelf PRM (edgestar.prm), or a head on
    the policy's own hidden state (an .npz head file, or a folder holding head.npz), which must
    be bound to this model file and to the LoRA `adapter` applied to it (or to none)."""
    if ppm is None:
        return None
    from .prm import open_prm

    # a policy running with an adapter is not the PRM's file as it is: share no context then
    prm = open_prm(
        ppm,
        policy,
        model if adapter is None else None,
        threads=threads,
        n_ctx=n_ctx,
        gpu_layers=ngl if dev == "cuda" else 0,
    )
    if prm is not None:  # an off-the-shelf PRM (its GGUF says so, or FAMILY:FILE.gguf)
        return prm
    if is_head_path(ppm):
        if not (model.is_file() and model.suffix == ".gguf"):
            raise ModelError(f"{ppm}: a head is bound to a GGUF model file, not {model}")
        return HeadReward(policy, ppm, model_path=model, adapter_path=adapter)
    return open_reward(Path(ppm), dev, threads, n_ctx, ngl)


def _load_bundle(
    b: Bundle,
    dev: str,
    threads: int | None,
    n_ctx: int | None,
    step_format: str | None,
    encoding: str,
) -> Solver:
    if encoding == "gguf" or encoding == b.policy.kind:
        pol_e, ppm_e = b.policy, b.ppm
    elif encoding in b.alternates:
        pol_e, ppm_e = b.alternates[encoding]["policy"], b.alternates[encoding].get("ppm")
    else:
        raise InputError(f"bundle {b.name} has no {encoding} encoding")
    prof = PROFILES.get(b.profile)
    rt = b.runtime
    threads = threads or rt.get("threads") or (prof.threads if prof else None)
    n_ctx = n_ctx or rt.get("n_ctx") or (prof.n_ctx if prof else 4096)
    ngl = rt.get("gpu_layers", prof.gpu_layers if prof else -1)
    base, adapter = b.path(pol_e), b.lora_path(pol_e)
    policy = open_policy(base, dev, threads, n_ctx, ngl, lora=adapter)
    try:
        ppm_path = b.path(ppm_e) if ppm_e else None
        reward = _open_ppm(ppm_path, policy, base, dev, threads, n_ctx, ngl, adapter=adapter)
    except BaseException:
        policy.close()
        raise
    s = b.search
    known = set(SearchConfig.__dataclass_fields__)
    config = SearchConfig(**{k: v for k, v in s.items() if k in known})
    bknown = set(Budget.__dataclass_fields__)
    budget = (
        Budget(**{k: v for k, v in (s.get("budget") or {}).items() if k in bknown})
        if s.get("budget")
        else None
    )
    return Solver(
        policy,
        reward,
        step_format=step_format or b.step_format,
        config=config,
        budget=budget,
        strategy=str(s.get("strategy", "mcts")),
    )
