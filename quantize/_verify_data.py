"""What verification feeds the models and what it tolerates: the fixed tokenizer strings,
prompts and sibling-step groups (data), and the tolerance table, one row per quant type,
with the measurements behind each bound. Read by quantize/verify.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgestar.formats import RSTAR, Marker, rstar_solution
from edgestar.types import InputError

# --------------------------------------------------------------------------------------------
# Fixed inputs (data)

_Q1 = "What is (12 + 7) * 3?"
_Q2 = "A box holds 24 pencils. How many pencils are in 5 boxes?"
_SOL1 = rstar_solution([("Add 12 and 7.", "x = 12 + 7")], "print(x * 3)", "57", "57")
_P1 = RSTAR.prompt(_Q1)
_P2 = RSTAR.prompt(_Q2)

TOKENIZER_STRINGS: tuple[str, ...] = (
    "",
    "0 1 12 123 1234 12345 3.14159 -42 1e10 1/2 2**10 007 1,000,000",
    "def solve(n):\n    total = sum(i * i for i in range(n))\n    return total  # done\n",
    "print(f'{x:.2f}') if x >= 0 else None; y = {'a': [1, 2]}[\"a\"]",
    *Marker.ALL,
    "".join(Marker.ALL),
    f"{Marker.CODE}\nx=1\n{Marker.END_STEP}{Marker.OUTPUT}1{Marker.END_OUTPUT}",
    "h\u00e9llo w\u00f6rld \u2014 \u4f60\u597d\uff0c\u4e16\u754c \U0001f600\U0001f44d\U0001f3fd "
    "\u2211\u222b\u221a\u03c0 \u03b1 \u03b2 \u00bd \u00a0 \u200b",
    "  leading and trailing spaces   \n\n\t\ttabs\r\nCRLF      wide    gaps\n\n\n",
    "I'm you'll they've can't 'quoted' \"double\" \\boxed{\\frac{1}{2}}",
    RSTAR.prompt(_Q1) + _SOL1,
)
"""Strings whose token ids must be identical to the reference's (the EOS text is added)."""

PROMPTS: tuple[str, ...] = (
    _P1,
    RSTAR.prompt(_Q1) + _SOL1,
    _P2 + "# Step 1: Multiply the pencils per box by the boxes.\n",
    "def f(x):\n    return x ** 2 + 1  # 3.14159\n\nprint(f(12))\n",
)
"""Prompts whose logits are compared at every position and which start the greedy decodes."""

GREEDY_TOKENS = 16

_STEPS_1 = (
    "# Step 1: Add 12 and 7.\nx = 12 + 7\n<end_of_step>\n",
    "# Step 1: Multiply 12 by 3.\nx = 12 * 3\n<end_of_step>\n",
    "# Step 1: Subtract 7 from 12.\nx = 12 - 7\n<end_of_step>\n",
    "# Step 1: The answer is 57.\nprint(57)\n<end_of_code>\n",
)
_STEPS_2 = (
    "# Step 1: Multiply 24 by 5.\nn = 24 * 5\n<end_of_step>\n",
    "# Step 1: Add 24 and 5.\nn = 24 + 5\n<end_of_step>\n",
    "# Step 1: Divide 24 by 5.\nn = 24 / 5\n<end_of_step>\n",
    "# Step 1: Count the boxes.\nboxes = 5\n<end_of_step>\n",
)
_PARENT_3 = _P1 + "# Step 1: Add 12 and 7.\nx = 12 + 7\n<end_of_step>\n"
_STEPS_3 = (
    "# Step 2: Multiply by 3.\ny = x * 3\nprint(y)\n<end_of_code>\n",
    "# Step 2: Add 3.\ny = x + 3\nprint(y)\n<end_of_code>\n",
    "# Step 2: Square it.\ny = x ** 2\nprint(y)\n<end_of_code>\n",
    "<output>57<end_of_output>\n<answer>The answer is \\boxed{57}<end_of_answer>",
)
PAIR_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (_P1, _STEPS_1),
    (_P2, _STEPS_2),
    (_PARENT_3, _STEPS_3),
)
"""(parent prefix, sibling continuations): every pair of siblings under one parent is a held
pair (3 groups x 6 pairs = 18 pairs over 12 prefixes)."""


def _pair_prefixes(
    groups: Sequence[tuple[str, Sequence[str]]],
) -> tuple[list[str], list[tuple[int, int]]]:
    prefixes: list[str] = []
    pairs: list[tuple[int, int]] = []
    for parent, kids in groups:
        base = len(prefixes)
        prefixes += [parent + k for k in kids]
        pairs += [(base + i, base + j) for i in range(len(kids)) for j in range(i + 1, len(kids))]
    return prefixes, pairs


# --------------------------------------------------------------------------------------------
# Tolerances (data)


@dataclass(frozen=True)
class Tolerance:
    """Bounds one verification must meet. None: measured and reported, not checked."""

    rel_max: float | None
    """max |logit diff| over all positions of all prompts, in units of the reference logits'
    standard deviation."""
    rel_mean: float | None
    """mean |logit diff|, same unit."""
    top1: float
    """minimum share of positions whose argmax agrees."""
    greedy: float
    """minimum greedy-continuation token agreement share."""
    score_max: float | None
    """PPM: max |score diff| (scores in (-1, 1))."""
    ranking: float
    """PPM: minimum share of held pairs ranked the same way."""


# Measured on this machine (2-core Xeon, 1 thread, kv_f32). Logit drift is in units of the
# reference logits' standard deviation ("x std") so that bounds carry over between a random toy
# (std 0.16-0.32) and a real model (SmolLM2-135M: std 5.9); absolute figures are reported too.
# Tiny: 16 random checkpoints (train.tiny "test" 64-wide and "edgestar-tiny" 256-wide, seeds 0-3,
# policy and PPM) vs torch, worst case of each figure. Real: SmolLM2-135M-Instruct's Q4_1 GGUF
# requantized by llama.cpp, vs that Q4_1 file (both sides carry llama.cpp's 8-bit activation
# quantization, so this is an upper-side figure for a fresh quantization).
#   quant   max x std       mean x std      top-1          greedy  score max  ranking
#           tiny    real    tiny    real    tiny   real    tiny    tiny       tiny
#   f32     4.1e-6  -       6.0e-7  -       1.0    -       1.0     9.4e-7     1.0  (onnx 4e-6)
#   f16     4.0e-3  0.25    6.9e-4  0.027   0.980  0.971   0.75    1.1e-3     1.0
#   bf16    3.6e-2  -       6.0e-3  -       0.976  -       0.98    6.8e-3     0.94
#   q8_0    0.11    0.43    1.7e-2  0.038   0.925  0.971   0.41    2.9e-2     0.94
#   q6_k    0.27    0.82    5.0e-2  0.069   0.877  0.939   0.27    0.11       0.83
#   q5_k_m  0.62    1.67    0.10    0.153   0.762  0.857   0.25    0.16       0.72
#   q4_k_m  0.99    1.12    0.19    0.141   0.587  0.878   0.19    0.39       0.83
#   q4_0    1.36    2.65    0.23    0.290   0.496  0.710   0.13    0.35       0.72
#   int8    0.17    -       2.6e-2  -       0.933  -       0.58    5.6e-2     0.78
#   int4    1.34    -       0.21    -       0.556  -       0.13    0.38       0.72
#   wrong checkpoint (same tokenizer, other seed; f32 or q4_0 file): max 5.5-6.8 x std, mean
#   1.12-1.13 x std, top-1 0.000, greedy 0.0, ranking 0.28-0.39: every row fails it on top-1
#   and mean drift.
# Bounds: mean drift ~3x the worst seen (tiny or real), shares the worst minus a margin. The
# max drift is a tail statistic over vocab x positions values that grows with the vocabulary:
# it is bounded for f32/f16/bf16 only (an export bug shows there first) and reported elsewhere.
# Greedy is the noisiest share (random tiny models have flat logits: one early flip costs the
# rest of that prompt, a quarter of the total), so its bounds are low; top-1 (teacher-forced)
# and the PPM ranking carry the low-bit rows. Re-measure on a trained checkpoint before
# tightening anything; `tol=` overrides the table per call.
TOLERANCES: dict[str, Tolerance] = {
    # quant: rel_max, rel_mean, top1, greedy, score_max, ranking
    "f32": Tolerance(5e-3, 5e-4, 0.99, 0.75, 1e-3, 0.94),
    "f16": Tolerance(0.1, 1e-2, 0.95, 0.5, 1e-2, 0.94),
    "bf16": Tolerance(0.3, 3e-2, 0.9, 0.5, 5e-2, 0.83),
    "q8_0": Tolerance(None, 0.1, 0.85, 0.25, 0.1, 0.8),
    "q6_k": Tolerance(None, 0.2, 0.75, 0.15, 0.3, 0.7),
    "q5_k_m": Tolerance(None, 0.35, 0.6, 0.1, 0.5, 0.6),
    "q4_k_m": Tolerance(None, 0.5, 0.45, 0.05, 0.7, 0.6),
    "q4_0": Tolerance(None, 0.6, 0.35, 0.05, 0.75, 0.55),
    "int8": Tolerance(None, 0.1, 0.8, 0.3, 0.2, 0.67),
    "int4": Tolerance(None, 0.6, 0.35, 0.05, 0.75, 0.55),
}
"""quant name -> bounds (`tolerance_for` maps aliases: fp32 -> f32)."""

_ALIASES = {"fp32": "f32", "float32": "f32", "fp16": "f16", "float16": "f16"}


def tolerance_for(quant: str) -> Tolerance:
    q = _ALIASES.get(quant.lower(), quant.lower())
    try:
        return TOLERANCES[q]
    except KeyError:
        raise InputError(
            f"no verification tolerance for quant {quant!r}; known: {', '.join(TOLERANCES)}"
        ) from None
