"""The data-pruning pipeline (`curate prune`): stages in `pipeline.py`, criteria in
`criteria/`, what each stage writes in `schema.py`."""
