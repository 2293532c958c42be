"""Airflow reads AIRFLOW_HOME and its configuration when first imported, so they are set here,
at collection, before any test imports it: one SQLite database per session under an absolute
temporary path, the DAGs of this checkout, no examples, retries without delay, a model-pruning
DAG of 3 levels (dag.test spends about a second on each skipped task group). Each test module
skips when the airflow extra is not installed (`make test` installs it)."""

import atexit
import os
import shutil
import tempfile

import pytest

from tests.airflow.dag_runs import params_kept
from tests.runs import REPO

os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-home-")
atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)  # nothing left
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "airflow_dags")
os.environ["AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY"] = "0"
os.environ["AIRFLOW__CURATE__MAX_LEVELS"] = "3"


@pytest.fixture(scope="session")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    db.initdb()
    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


@pytest.fixture
def prune_dag(dagbag):
    with params_kept(dagbag.get_dag("curate_prune")) as dag:
        yield dag
