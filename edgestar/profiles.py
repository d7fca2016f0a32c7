"""Device profiles: what a target machine can hold and how to run on it.

Profiles are data (one frozen dataclass each, in `PROFILES`); deploy picks quant levels from them
and the runtime takes threads, context size, batch width and GPU layers from them. Figures are
conservative starting points for the named hardware, not measurements of it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .types import InputError


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    threads: int
    n_ctx: int
    width: int
    """Default expansion width (candidate steps decoded together)."""
    gpu_layers: int
    """Layers offloaded to the GPU: 0 none, -1 all."""
    policy_quant: str
    ppm_quant: str
    memory_mb: int
    """Memory the model files and KV cache may use in all."""

    def __post_init__(self) -> None:
        if self.threads < 1 or self.n_ctx < 256 or self.width < 1 or self.memory_mb < 64:
            raise InputError(f"device profile {self.name!r} has an impossible setting")


PROFILES: dict[str, DeviceProfile] = {
    p.name: p
    for p in (
        DeviceProfile(
            name="laptop-cpu",
            description="x86-64 or Apple laptop, CPU only, 2-8 cores",
            threads=2,
            n_ctx=4096,
            width=8,
            gpu_layers=0,
            policy_quant="q4_k_m",
            ppm_quant="q8_0",
            memory_mb=2048,
        ),
        DeviceProfile(
            name="cuda-desktop",
            description="desktop with an NVIDIA GPU (8 GB or more)",
            threads=4,
            n_ctx=8192,
            width=16,
            gpu_layers=-1,
            policy_quant="q8_0",
            ppm_quant="f16",
            memory_mb=8192,
        ),
        DeviceProfile(
            name="jetson-orin-nano-8gb",
            description="Jetson Orin Nano 8 GB (shared CPU/GPU memory, CUDA arch 87)",
            threads=4,
            n_ctx=4096,
            width=8,
            gpu_layers=-1,
            policy_quant="q4_k_m",
            ppm_quant="q8_0",
            memory_mb=3072,
        ),
        DeviceProfile(
            name="jetson-agx-orin",
            description="Jetson AGX Orin 32/64 GB (CUDA arch 87)",
            threads=8,
            n_ctx=8192,
            width=16,
            gpu_layers=-1,
            policy_quant="q8_0",
            ppm_quant="q8_0",
            memory_mb=16384,
        ),
    )
}


def get_profile(name: str) -> DeviceProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise InputError(
            f"unknown device profile {name!r}; choose from {', '.join(PROFILES)}"
        ) from None
