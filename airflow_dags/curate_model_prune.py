"""`curate model prune` on Airflow: level_0, each pruning level (a task per unit: the main
network and, with `controls`, its two controls), the summary; a task retried alone.

Trigger it with the request as the run's configuration, by the names of `curate model prune`'s
options, e.g. `{"model": "pipelines.cifar_resnet:resnet20", "train": ["/data/train/*.tar"],
"eval": ["/data/test/*.tar"], "output": "/runs/r20-imp", "schedule": "imp", "sparsity": 0.9}`.
The DAG lays out levels 1 to MAX_LEVELS (a site setting, below); a run skips the levels its
config does not reach, and a config of more levels is refused at its first task. See
docs/deploy.md.
"""

from airflow.sdk.configuration import conf

from curation.airflow_dag import model_params, pipeline_dag
from pipelines.model_pruning.config import PruneConfig
from pipelines.model_pruning.tasks import prune_tasks

# [curate] max_levels in airflow.cfg (or AIRFLOW__CURATE__MAX_LEVELS): 20 holds imp at its
# default rate (0.2) up to sparsity 0.98 (18 levels)
MAX_LEVELS = conf.getint("curate", "max_levels", fallback=20)

curate_model_prune = pipeline_dag(
    "curate_model_prune", prune_tasks(MAX_LEVELS), model_params(PruneConfig), __doc__
)
