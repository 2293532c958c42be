"""Proof that the pruning is worth it: models trained on the kept set, with and without
knowledge distillation, against the full set and a random subset of the same size, at matched
compute (the same number of optimisation steps for every subset)."""
