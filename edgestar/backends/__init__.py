"""Model backends behind the `Policy` and `Reward` protocols (see base.py)."""

from .base import Candidate, Policy, Proposal, Reward, StepRequest

__all__ = ["Candidate", "Policy", "Proposal", "Reward", "StepRequest"]
