"""edgestar.train: self-evolution of the policy and the PPM from MCTS rollouts."""
