"""Model pruning on the staged executor: `curate model prune` (one network, level by level:
one-shot, gradual, IMP with rewinding and controls, N:M), `curate model sweep` (methods x
sparsities x seeds), `curate model structured` (channels removed through torch-pruning) and
`curate model bench` (measured latency). `pipeline.py` declares the stages, `schema.py` maps the
run directory, docs/model_pruning.md says what each does."""
