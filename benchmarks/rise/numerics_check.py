"""Which torch knobs change the trained weights of the micro-rise model: 60 SFT steps on a run's
bootstrap references from its base, the weights' SHA-256 printed. Run it once per setting:

    python benchmarks/rise/numerics_check.py RUN_DIR            # default kernels, 1 thread
    python benchmarks/rise/numerics_check.py RUN_DIR --no-mkldnn
    python benchmarks/rise/numerics_check.py RUN_DIR --threads 2
    ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 DNNL_MAX_CPU_ISA=AVX2 \\
        python benchmarks/rise/numerics_check.py RUN_DIR

RUN_DIR: a run folder of benchmarks/rise/variants.py (its base/ and problems/bootstrap.jsonl).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-mkldnn", action="store_true")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    if a.no_mkldnn:
        torch.backends.mkldnn.enabled = False
    from edgestar.formats import RSTAR
    from edgestar.train.datasets import SFTExample
    from edgestar.train.problems import read_jsonl
    from edgestar.train.schema import ProblemRecord
    from edgestar.train.sft import train_policy
    from edgestar.train.trainer import TrainConfig, file_sha256

    probs = read_jsonl(a.run / "problems" / "bootstrap.jsonl", ProblemRecord)[:400]
    exs = [SFTExample(p.id, RSTAR.prompt(p.question), p.solution or "", 1.0) for p in probs]
    cfg = TrainConfig.preset("cpu-tiny", epochs=1, batch_size=4, lr=0.003, eval_fraction=0.0,
                             save_every_steps=0, max_steps=60)  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        rep = train_policy(a.run / "base", exs, Path(d) / "p", cfg, progress=False)
        h = file_sha256(Path(d) / "p" / "model.safetensors")
    print(f"threads {a.threads} mkldnn {torch.backends.mkldnn.enabled} "
          f"kernels {torch.backends.cpu.get_cpu_capability()}: weights {h[:16]}, "
          f"loss {rep.final_loss:.7f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
