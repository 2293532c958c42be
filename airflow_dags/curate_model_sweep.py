"""`curate model sweep` on Airflow: level_0, one task per member (method x sparsity x seed x
KD), the summary; a task retried alone.

Trigger it with the request as the run's configuration, by the names of `curate model sweep`'s
options, e.g. `{"model": "pipelines.cifar_resnet:resnet20", "checkpoint": "/models/r20.pt",
"train": ["/data/train/*.tar"], "eval": ["/data/test/*.tar"], "output": "/runs/r20-sweep",
"methods": ["global", "lamp"], "sparsities": [0.5, 0.9]}`. See docs/deploy.md.
"""

from curation.airflow_dag import model_params, pipeline_dag
from pipelines.model_pruning.config import SweepConfig
from pipelines.model_pruning.tasks import sweep_tasks

curate_model_sweep = pipeline_dag(
    "curate_model_sweep", sweep_tasks(), model_params(SweepConfig), __doc__
)
