"""Checkpoint -> ONNX folder with past key values (`export_onnx`), and its int8 / int4
quantization (`quantize_onnx`, quant names in `QUANTS`).

Owns the ONNX deploy format that `edgestar.backends.onnx` (OnnxPolicy, OnnxReward) reads:

    model.onnx                       optimum's "text-generation-with-past" decoder:
                                     inputs  input_ids, attention_mask, position_ids,
                                             past_key_values.{i}.key / .value  [B, kv_heads, P, d]
                                     outputs logits [B, S, V], present.{i}.key / .value
                                     PPM only: reward [B, S] (raw r = w . h + b at every position)
    model.onnx_data                  only when the graph is over 2 GB (external weights)
    config.json, generation_config.json, tokenizer.json, tokenizer_config.json,
    special_tokens_map.json, chat_template.jinja, ...   copied from the checkpoint (originals, not
                                     optimum's re-saved copies); tokenizer.json is what the
                                     runtime reads, with the `tokenizers` library
    edgestar.json                    the checkpoint's meta; provenance["onnx"] records the export
                                     (source, opset, quant, reward output, sizes)

The PPM value head: the backbone is exported by optimum exactly like a policy (a PPM checkpoint
is a causal-LM folder), then the value head is appended to the ONNX graph with onnx helper nodes
on the input of the LM head's MatMul, which is the final hidden state after the final norm (the
tensor `ValueHeadModel` reads): Cast(float32) -> MatMul(w^T [H, 1]) -> Add(b) -> Squeeze ->
output "reward". Chosen over exporting a hand-written torch wrapper because optimum already
handles the KV-cache plumbing (DynamicCache, masks, GQA, per-architecture patches), and the
appended head is four nodes whose input is checked (the MatMul producing "logits" must take a
[.., H] hidden state and an [H, V] weight). One session thus returns logits, KV and the score,
so the runtime can reuse a parent prefix's KV when it scores a child. The squash
tanh(r / score_scale) stays in the runtime (score_scale lives in edgestar.json).

Departs from STACK.md: nothing in the export path; optimum's own validation pass is switched off
(`do_validation=False`: it re-runs the model on random inputs and costs more than the export on
a tiny model); parity is checked by tests/test_onnx.py instead. The value-head nodes are
excluded from quantization (one [H, 1] MatMul: nothing to save, and it keeps the score exact
given the backbone's hidden state).

Both functions write into a temporary folder beside `out_dir` and rename it into place, so a
crash never leaves a half-written folder under the final name; an existing `out_dir` is
refused unless `force=True`. Needs the `[quantize]` extra (torch, transformers, optimum,
optimum-onnx, onnx, onnx-ir, onnxruntime).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgestar.backends.onnx import (
    MODEL_FILE,
    REWARD_OUTPUT,
    VALUE_HEAD_NODE_PREFIX,
    check_onnx_header,
)
from edgestar.checkpoint import META_FILE, CheckpointMeta, read_meta, write_meta
from edgestar.types import InputError, ModelError, one_line

__all__ = ["QUANTS", "QuantReport", "QuantSpec", "export_onnx", "quantize_onnx", "SIDE_FILES"]

TASK = "text-generation-with-past"

SIDE_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    META_FILE,
)
"""Files copied from the checkpoint (when present) next to model.onnx."""

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
_EXTERNAL_DATA_LIMIT = 1_800_000_000  # protobuf's hard cap is 2 GiB; keep a margin


# ----------------------------------------------------------------------------------- helpers


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@contextlib.contextmanager
def _staging(out_dir: Path, force: bool) -> Iterator[Path]:
    """Yield a fresh temp folder beside `out_dir`; on success rename it to `out_dir` (replacing
    an existing one only when `force`), on failure delete it."""
    if out_dir.exists() and not force:
        raise InputError(f"{out_dir}: already exists (pass force=True to replace it)")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: exists and is not a folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it 0700; the final folder is an ordinary one
        yield tmp
        if out_dir.exists():
            old = Path(
                tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent)
            )
            os.replace(out_dir, old / "x")
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _same_or_inside(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def _check_checkpoint(ckpt_dir: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    path = Path(ckpt_dir)
    if not path.is_dir():
        raise ModelError(f"{path}: no such checkpoint folder")
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise ModelError(f"{path}: not a model folder (no config.json)")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{cfg_path}: unreadable ({one_line(e)})") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelError(f"{cfg_path}: not a transformers config (no model_type)")
    if not any((path / f).is_file() for f in _WEIGHT_FILES):
        raise ModelError(f"{path}: no model weights ({' / '.join(_WEIGHT_FILES)})")
    if not (path / "tokenizer.json").is_file():
        raise ModelError(
            f"{path}: no tokenizer.json (the ONNX runtime reads a fast tokenizer's "
            "tokenizer.json with the `tokenizers` library)"
        )
    return path, config


def _copy_side_files(src: Path, dst: Path) -> None:
    for name in SIDE_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)


def _write_provenance(folder: Path, meta: CheckpointMeta | None, onnx_info: dict[str, Any]) -> None:
    if meta is None:
        return
    prov = dict(meta.provenance)
    prov["onnx"] = {**dict(prov.get("onnx") or {}), **onnx_info}
    write_meta(folder, dataclasses.replace(meta, provenance=prov))


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """optimum / torch.onnx print tracer warnings and progress for every export; keep errors."""
    names = ("optimum", "transformers", "torch.onnx", "root")
    old = {n: logging.getLogger(None if n == "root" else n).level for n in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for n in names:
            logging.getLogger(None if n == "root" else n).setLevel(logging.ERROR)
        try:
            from transformers.utils import logging as hf_logging

            hf_old = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()
        except ImportError:  # pragma: no cover - transformers is part of the [quantize] extra
            hf_old = None
        try:
            yield
        finally:
            for n, lvl in old.items():
                logging.getLogger(None if n == "root" else n).setLevel(lvl)
            if hf_old is not None:
                hf_logging.set_verbosity(hf_old)


def _load_onnx(path: Path) -> Any:
    import onnx

    try:
        return onnx.load(str(path), load_external_data=True)
    except Exception as e:
        raise ModelError(f"{path}: unreadable ONNX model ({one_line(e)})") from e


def _save_onnx(model: Any, path: Path) -> None:
    import onnx

    external = model.ByteSize() > _EXTERNAL_DATA_LIMIT
    for stale in (path, path.with_name(path.name + "_data")):
        stale.unlink(missing_ok=True)
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=external,
        all_tensors_to_one_file=True,
        location=path.name + "_data",
    )
    onnx.checker.check_model(str(path))


# ------------------------------------------------------------------------------- value head


def _append_value_head(model: Any, weight: Any, bias: Any) -> None:
    """Add output REWARD_OUTPUT [B, S] = h @ w^T + b, h = the LM head's input (final hidden
    state after the final norm). Raises ModelError if that MatMul can't be found."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    node = producers.get("logits")
    if node is None or node.op_type != "MatMul":
        raise ModelError(
            "cannot attach the value head: 'logits' is not produced by a MatMul "
            f"(got {node.op_type if node is not None else 'nothing'})"
        )
    hidden_name, lm_weight_name = node.input[0], node.input[1]
    h = int(weight.shape[1])
    inits = {t.name: t for t in graph.initializer}
    if lm_weight_name in inits:
        dims = list(inits[lm_weight_name].dims)
        if len(dims) != 2 or dims[0] != h:
            raise ModelError(
                f"cannot attach the value head: LM head weight is {dims}, expected [{h}, vocab]"
            )
    if any(o.name == REWARD_OUTPUT for o in graph.output):
        raise ModelError(f"the exported graph already has an output named {REWARD_OUTPUT!r}")

    p = VALUE_HEAD_NODE_PREFIX
    w_name, b_name, ax_name = f"{p}weight", f"{p}bias", f"{p}squeeze_axes"
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.ascontiguousarray(weight.T, dtype=np.float32), w_name),
            numpy_helper.from_array(np.asarray(bias, dtype=np.float32).reshape(1), b_name),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), ax_name),
        ]
    )
    graph.node.extend(
        [
            helper.make_node(
                "Cast", [hidden_name], [f"{p}h"], name=f"{p}Cast", to=TensorProto.FLOAT
            ),
            helper.make_node("MatMul", [f"{p}h", w_name], [f"{p}wh"], name=f"{p}MatMul"),
            helper.make_node("Add", [f"{p}wh", b_name], [f"{p}r"], name=f"{p}Add"),
            helper.make_node("Squeeze", [f"{p}r", ax_name], [REWARD_OUTPUT], name=f"{p}Squeeze"),
        ]
    )
    logits_out = next(o for o in graph.output if o.name == "logits")
    dims = [
        d.dim_param if d.HasField("dim_param") else d.dim_value
        for d in logits_out.type.tensor_type.shape.dim
    ]
    graph.output.append(
        helper.make_tensor_value_info(REWARD_OUTPUT, TensorProto.FLOAT, dims[:2] or None)
    )


# ----------------------------------------------------------------------------------- export


def export_onnx(
    ckpt_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    force: bool = False,
    opset: int | None = None,
) -> Path:
    """Export an HF-format checkpoint (policy or PPM) to an ONNX folder for OnnxPolicy /
    OnnxReward; return the folder. float32 weights as saved; optimum picks the opset unless
    `opset` is given. ModelError for a missing/invalid checkpoint or a failed export, InputError
    for an existing `out_dir` without `force` (or an `out_dir` that is the checkpoint)."""
    path, config = _check_checkpoint(ckpt_dir)
    meta = read_meta(path) if (path / META_FILE).exists() else None
    out = Path(out_dir)
    if _same_or_inside(out, path) or _same_or_inside(path, out):
        raise InputError(f"{out}: the ONNX folder must not be (or contain) the checkpoint {path}")
    is_ppm = meta is not None and meta.role == "ppm"
    head: tuple[Any, Any] | None = None
    if is_ppm:
        from edgestar.backends.torch_backend import load_value_head

        hidden = config.get("hidden_size")
        w, b = load_value_head(path, int(hidden) if hidden else None)
        head = (w.numpy(), b.numpy())

    t0 = time.perf_counter()
    with _staging(out, force) as tmp:
        try:
            from optimum.exporters.onnx import main_export
        except ImportError as e:
            raise ModelError(
                f"ONNX export needs optimum + optimum-onnx (the [quantize] extra): {one_line(e)}"
            ) from e
        try:
            with _quiet_export():
                main_export(
                    str(path),
                    output=str(tmp),
                    task=TASK,
                    opset=opset,
                    device="cpu",
                    local_files_only=True,
                    do_validation=False,
                    library_name="transformers",
                )
        except ModelError:
            raise
        except Exception as e:  # optimum raises ValueError, KeyError, RuntimeError, OSError...
            raise ModelError(f"{path}: ONNX export failed ({one_line(e)})") from e
        onnx_path = tmp / MODEL_FILE
        if not onnx_path.is_file():
            raise ModelError(f"{path}: ONNX export wrote no {MODEL_FILE}")
        model = _load_onnx(onnx_path)
        if head is not None:
            _append_value_head(model, *head)
            _save_onnx(model, onnx_path)
        opset_used = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        _copy_side_files(path, tmp)
        _write_provenance(
            tmp,
            meta,
            {
                "source": str(path.resolve()),
                "task": TASK,
                "opset": int(opset_used),
                "quant": "fp32",
                "reward_output": REWARD_OUTPUT if head is not None else None,
                "bytes": _folder_bytes(tmp),
                "export_seconds": round(time.perf_counter() - t0, 3),
            },
        )
    return out


# ------------------------------------------------------------------------------ quantization


@dataclass(frozen=True)
class QuantSpec:
    """One quantization recipe: `fn(model_in, model_out, exclude_nodes)` writes the model."""

    fn: Callable[[Path, Path, list[str]], None]
    description: str


@dataclass(frozen=True)
class QuantReport:
    """What `quantize_onnx` did: the folder it wrote and the model sizes before / after."""

    path: Path
    quant: str
    bytes_before: int
    bytes_after: int

    @property
    def ratio(self) -> float:
        return self.bytes_after / self.bytes_before if self.bytes_before else 0.0

    def __str__(self) -> str:
        mb = 1024 * 1024
        return (
            f"{self.path}: {self.quant} {self.bytes_before / mb:.2f} MB -> "
            f"{self.bytes_after / mb:.2f} MB ({self.ratio:.0%})"
        )


def _quant_int8(model_in: Path, model_out: Path, exclude: list[str]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(model_in),
        str(model_out),
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        reduce_range=False,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude,
        use_external_data_format=model_in.stat().st_size > _EXTERNAL_DATA_LIMIT
        or model_in.with_name(model_in.name + "_data").exists(),
        extra_options={"MatMulConstBOnly": True},
    )


def _quant_int4(model_in: Path, model_out: Path, exclude: list[str]) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    q = MatMulNBitsQuantizer(
        onnx.load(str(model_in), load_external_data=True),
        bits=4,
        block_size=32,
        is_symmetric=True,
        nodes_to_exclude=exclude,
    )
    q.process()
    q.model.save_model_to_file(
        str(model_out), use_external_data_format=q.model.model.ByteSize() > _EXTERNAL_DATA_LIMIT
    )


QUANTS: dict[str, QuantSpec] = {
    "int8": QuantSpec(
        _quant_int8,
        "onnxruntime quantize_dynamic: MatMul weights int8 per output channel (symmetric), "
        "activations uint8 quantized per call (MatMulInteger / DynamicQuantizeLinear)",
    ),
    "int4": QuantSpec(
        _quant_int4,
        "onnxruntime MatMulNBitsQuantizer: MatMul weights 4-bit symmetric, block size 32 "
        "along K, float scales (MatMulNBits contrib op)",
    ),
}
"""Quantization names -> recipes. Both leave embeddings (Gather), norms and the value head in
float32."""


def quantize_onnx(
    onnx_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    quant: str = "int8",
    force: bool = False,
) -> QuantReport:
    """Quantize an exported ONNX folder's MatMul weights into a new folder (side files copied,
    edgestar.json provenance["onnx"]["quant"] updated); return sizes before/after."""
    spec = QUANTS.get(quant)
    if spec is None:
        raise InputError(f"unknown quant {quant!r}; choose from {', '.join(QUANTS)}")
    src = Path(onnx_dir)
    if not src.is_dir():
        raise ModelError(f"{src}: no such ONNX folder")
    model_in = src / MODEL_FILE
    check_onnx_header(model_in)
    out = Path(out_dir)
    if _same_or_inside(out, src) or _same_or_inside(src, out):
        raise InputError(f"{out}: the quantized folder must not be (or contain) {src}")
    meta = read_meta(src) if (src / META_FILE).exists() else None
    prev = dict((meta.provenance.get("onnx") or {}) if meta else {})
    if prev.get("quant", "fp32") != "fp32":
        raise InputError(f"{src}: already quantized ({prev['quant']}); quantize the fp32 export")
    before = sum(p.stat().st_size for p in (model_in, src / (MODEL_FILE + "_data")) if p.is_file())
    import onnx

    graph = onnx.load(str(model_in), load_external_data=False).graph
    exclude = [n.name for n in graph.node if n.name.startswith(VALUE_HEAD_NODE_PREFIX)]

    with _staging(out, force) as tmp:
        try:
            with _quiet_export():
                spec.fn(model_in, tmp / MODEL_FILE, exclude)
        except (ModelError, InputError):
            raise
        except Exception as e:
            raise ModelError(f"{src}: {quant} quantization failed ({one_line(e)})") from e
        for p in src.iterdir():
            if p.is_file() and not p.name.startswith(MODEL_FILE) and not (tmp / p.name).exists():
                shutil.copyfile(p, tmp / p.name)
        after = sum(p.stat().st_size for p in tmp.iterdir() if p.name.startswith(MODEL_FILE))
        _write_provenance(
            tmp,
            meta,
            {"quant": quant, "quant_from": str(src.resolve()), "bytes": _folder_bytes(tmp)},
        )
    return QuantReport(out, quant, before, after)
