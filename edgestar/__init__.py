"""edgestar: on-device reasoning for small language models.

A policy model writes a solution one step at a time (rStar-Math's code-augmented chain of
thought: reasoning in Python comments plus code that must run); a process preference model
scores each step; a budgeted search (greedy, best-of-n, beam or MCTS) picks the path.

    import edgestar
    with edgestar.load() as solver:                      # the shipped default bundle
        r = solver.solve("What is 12 + 30?", budget=edgestar.Budget(rollouts=8))
        print(r.answer, r.score, r.stats.tokens_generated)

Importing edgestar loads no model runtime (no torch, no llama.cpp) until a model is loaded.
"""

from .backends.base import Candidate, Policy, Proposal, Reward, StepRequest
from .bundle import Bundle, read_bundle, shipped_bundles
from .formats import FORMATS, StepFormat
from .head import Head, HeadReward, load_head
from .prm import PRM_FAMILIES, PrmFamily, PrmReward
from .profiles import PROFILES, DeviceProfile
from .pull import PullResult, pull_model
from .registry import REGISTRY, ModelSpec
from .search import STRATEGIES
from .solver import Solver, load
from .types import (
    Budget,
    EdgestarError,
    InputError,
    ModelError,
    Problem,
    SearchConfig,
    SearchEvent,
    SearchStats,
    SolveResult,
    StepView,
)

__version__ = "0.1.0"

__all__ = [
    "FORMATS",
    "PROFILES",
    "PRM_FAMILIES",
    "REGISTRY",
    "STRATEGIES",
    "Budget",
    "Bundle",
    "Candidate",
    "DeviceProfile",
    "EdgestarError",
    "Head",
    "HeadReward",
    "InputError",
    "ModelError",
    "ModelSpec",
    "Policy",
    "PrmFamily",
    "PrmReward",
    "Problem",
    "Proposal",
    "PullResult",
    "Reward",
    "SearchConfig",
    "SearchEvent",
    "SearchStats",
    "SolveResult",
    "Solver",
    "StepFormat",
    "StepRequest",
    "StepView",
    "__version__",
    "load",
    "load_head",
    "pull_model",
    "read_bundle",
    "shipped_bundles",
]
