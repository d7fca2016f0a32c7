"""Both sides of a verification: TorchReference (the source HF checkpoint on torch: token ids,
logits, greedy decodes and PPM scores of the fixed inputs) and the targets (a GGUF file on
llama.cpp, an ONNX folder on onnxruntime) that produce the same figures."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgestar.checkpoint import read_meta
from edgestar.types import InputError, ModelError

from ._verify_data import GREEDY_TOKENS, PAIR_GROUPS, PROMPTS, TOKENIZER_STRINGS, _pair_prefixes


def _check_threads(threads: int) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputError(f"threads must be a positive whole number, got {threads!r}")
    return threads


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------------------------
# Reference (torch)


@dataclass(frozen=True)
class _Greedy:
    ids: tuple[int, ...]
    """Generated ids (an EOS id last when the model ended)."""
    texts: tuple[str, ...]
    """texts[n] = decode(ids[:n + 1]) (special tokens kept)."""
    eos: bool


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class TorchReference:
    """The source checkpoint's outputs on torch (float32, CPU), computed once on first use and
    reused for every target verified against it (deploy checks F32 and quantized files)."""

    def __init__(
        self,
        ckpt_dir: str | os.PathLike[str],
        *,
        prompts: Sequence[str] | None = None,
        threads: int = 1,
        greedy_tokens: int = GREEDY_TOKENS,
    ) -> None:
        self.path = Path(ckpt_dir)
        self.meta = read_meta(self.path)
        self.role = self.meta.role
        self.prompts = tuple(PROMPTS if prompts is None else prompts)
        if not self.prompts or not all(isinstance(p, str) and p for p in self.prompts):
            raise InputError("prompts must be non-empty strings")
        self.threads = _check_threads(threads)
        self.greedy_tokens = greedy_tokens
        self.pair_prefixes, self.pairs = _pair_prefixes(PAIR_GROUPS)
        self._done = False
        self.strings: tuple[str, ...] = ()
        self.string_ids: list[list[int]] = []
        self.prompt_ids: list[list[int]] = []
        self.logits: list[np.ndarray] = []
        self.greedy: list[_Greedy] = []
        self.scores: list[float] | None = None
        self._longest = 0
        self.seconds = 0.0

    def compute(self) -> TorchReference:
        if self._done:
            return self
        import torch

        from edgestar.backends.torch_backend import TorchPolicy, TorchReward

        t0 = time.perf_counter()
        with _torch_threads(self.threads), torch.inference_mode():
            pol = TorchPolicy(self.path, device="cpu", dtype="float32")
            try:
                eos = pol.tokenizer.eos_token
                self.strings = TOKENIZER_STRINGS + ((eos + "after eos",) if eos else ())
                self.string_ids = [pol.encode(s) for s in self.strings]
                self.prompt_ids = [pol.encode(p) for p in self.prompts]
                for ids in self.prompt_ids:
                    out = pol.model(input_ids=torch.tensor([ids]), use_cache=False)
                    self.logits.append(out.logits[0].float().numpy().copy())
                self.greedy = [self._greedy(pol, ids) for ids in self.prompt_ids]
                self._longest = max(
                    len(pol.encode(x)) for x in (*self.pair_prefixes, *self.prompts, *self.strings)
                )
            finally:
                pol.close()
            if self.role == "ppm":
                rw = TorchReward(self.path, device="cpu", dtype="float32")
                try:
                    self.scores = rw.score(self.pair_prefixes)
                finally:
                    rw.close()
        self.seconds = time.perf_counter() - t0
        self._done = True
        return self

    def _greedy(self, pol: Any, ids: list[int]) -> _Greedy:
        import torch

        out = pol.model(input_ids=torch.tensor([ids]), use_cache=True)
        cache = out.past_key_values
        gen: list[int] = []
        texts: list[str] = []
        eos = False
        for _ in range(self.greedy_tokens):
            tok = int(out.logits[0, -1].float().argmax())
            gen.append(tok)
            if tok in pol.eos_ids:
                eos = True
                break
            texts.append(pol._decode(gen))
            if len(gen) == self.greedy_tokens:
                break
            out = pol.model(input_ids=torch.tensor([[tok]]), past_key_values=cache, use_cache=True)
            cache = out.past_key_values
        return _Greedy(tuple(gen), tuple(texts), eos)

    @property
    def n_ctx(self) -> int:
        """A context that holds every prompt plus its greedy continuation."""
        return max(256, self._longest + self.greedy_tokens + 16)


# --------------------------------------------------------------------------------------------
# Targets


class _Target:
    """What a verified file must offer: ids, all-position logits, greedy decode, scores."""

    role: str
    load_seconds: float
    runtime: str

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def logits(self, text: str, ids: list[int]) -> np.ndarray:
        raise NotImplementedError

    def greedy(self, prompt: str, n: int) -> tuple[str, int, str]:
        """(text, n_tokens, finish) of the backend's own temperature-0 decode."""
        from edgestar.backends.base import StepRequest

        (p,) = self.policy.propose(
            [StepRequest(prompt, k=1, seed=0, max_tokens=n, temperature=0.0, top_p=1.0)]
        )
        c = p.candidates[0]
        return c.text, c.n_tokens, c.finish

    def scores(self, prefixes: Sequence[str]) -> list[float]:
        raise NotImplementedError

    policy: Any = None
    reward: Any = None

    def close(self) -> None:
        for obj in (self.policy, self.reward):
            if obj is not None:
                with contextlib.suppress(Exception):
                    obj.close()


class _GGUFTarget(_Target):
    def __init__(
        self,
        path: Path,
        role: str,
        n_ctx: int,
        threads: int,
        kv_f32: bool,
        lora: Path | None = None,
    ) -> None:
        from edgestar.backends.llamacpp import LlamaCppPolicy, LlamaCppReward

        self.role = role
        kw: dict[str, Any] = dict(n_ctx=n_ctx, n_threads=threads, kv_f32=kv_f32, lora=lora)
        t0 = time.perf_counter()
        if role == "ppm":
            self.reward = LlamaCppReward(path, **kw)
            self.load_seconds = time.perf_counter() - t0
            try:
                self.policy = LlamaCppPolicy(path, n_seq_max=2, **kw)
            except BaseException:
                self.close()
                raise
        else:
            self.policy = LlamaCppPolicy(path, n_seq_max=2, **kw)
            self.load_seconds = time.perf_counter() - t0
        self.runtime = f"llama-cpp-python {_version('llama_cpp_python') or '?'}"

    def encode(self, text: str) -> list[int]:
        return list(self.policy.tokenize(text))

    def logits(self, text: str, ids: list[int]) -> np.ndarray:
        return np.asarray(self.policy.logits(text, all_positions=True), dtype=np.float32)

    def scores(self, prefixes: Sequence[str]) -> list[float]:
        return list(self.reward.score(list(prefixes)))


class _OnnxTarget(_Target):
    def __init__(self, path: Path, role: str, threads: int) -> None:
        onnx_backend = _onnx_backend()
        self.role = role
        t0 = time.perf_counter()
        if role == "ppm":
            self.reward = onnx_backend.OnnxReward(path, device="cpu", threads=threads)
            self.load_seconds = time.perf_counter() - t0
            try:
                self.policy = onnx_backend.OnnxPolicy(path, device="cpu", threads=threads)
            except BaseException:
                self.close()
                raise
        else:
            self.policy = onnx_backend.OnnxPolicy(path, device="cpu", threads=threads)
            self.load_seconds = time.perf_counter() - t0
        self.runtime = f"onnxruntime {_version('onnxruntime') or '?'}"

    def encode(self, text: str) -> list[int]:
        return list(self.policy.encode(text))

    def logits(self, text: str, ids: list[int]) -> np.ndarray:
        fn = getattr(self.policy, "logits", None)
        if callable(fn):
            return np.asarray(fn(text, all_positions=True), dtype=np.float32)
        sess = getattr(self.policy, "_sess", None)
        if sess is None or not hasattr(sess, "run"):
            raise ModelError(
                "edgestar.backends.onnx.OnnxPolicy offers no logits(text, all_positions=True) "
                "(and no session to run): cannot compare logits"
            )
        lg, _, _ = sess.run(np.array([ids], dtype=np.int64), None, 0)
        return np.asarray(lg[0], dtype=np.float32)

    def scores(self, prefixes: Sequence[str]) -> list[float]:
        return list(self.reward.score(list(prefixes)))


def _onnx_backend() -> Any:
    """edgestar.backends.onnx, or a ModelError saying what is missing."""
    try:
        from edgestar.backends import onnx as onnx_backend
    except ImportError as e:
        raise ModelError(
            f"ONNX verification needs edgestar.backends.onnx and onnxruntime ({e}); install the "
            "[onnx] extra"
        ) from None
    if not hasattr(onnx_backend, "OnnxPolicy"):
        raise ModelError("edgestar.backends.onnx has no OnnxPolicy yet: ONNX is not available")
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise ModelError(
            f"ONNX verification needs onnxruntime ({e}): pip install onnxruntime"
        ) from None
    return onnx_backend


def onnx_available() -> str | None:
    """None when ONNX export + runtime are usable here, else the reason they are not."""
    try:
        _onnx_backend()
        import optimum.exporters.onnx  # noqa: F401

        from edgestar.quantize import onnx_export  # noqa: F401
    except ModelError as e:
        return str(e)
    except ImportError as e:
        return f"ONNX export is not available ({e}); install the [quantize] extra"
    return None
