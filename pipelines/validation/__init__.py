"""Proof that the pruning is worth it: `curate validate` and `curate sweep`, pipelines of their
own on the engine (nested in the prune run). Models trained on the kept set, on random subsets
of the same size and on the full pool, with and without knowledge distillation, at matched
compute, tested on samples the pruning never saw, with 95% intervals (docs/validation.md)."""
