"""`curate prune` on Airflow: one task per unit of every stage, retried alone.

Trigger it with the request as the run's configuration, by the names of `curate prune`'s
options, e.g. `{"shards": ["s3://bucket/in/{00000..00099}.tar"], "output": "s3://bucket/out",
"rate": 0.5}`; `"executor": "dask", "scheduler": "tcp://host:8786"` runs the units on a Dask
cluster instead of the Airflow workers. Credentials belong in the workers' environment, not in
the configuration (Airflow stores it). See docs/deploy.md.
"""

from curation.airflow_dag import model_params, pipeline_dag
from pipelines.data_pruning.config import PruneConfig
from pipelines.data_pruning.tasks import FLAGS, REQUEST, PruneTasks

curate_prune = pipeline_dag(
    "curate_prune", PruneTasks(), model_params(PruneConfig, REQUEST, FLAGS), __doc__
)
