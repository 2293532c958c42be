"""`curate model prune` and `curate model sweep`: check everything that can be checked before
writing (the data has labels, the checkpoint fits the network, the network has prunable layers,
the method can reach the sparsity, the Dask scheduler answers), claim the output folder, take
its lease, record the config, run the stages.

A run is a few steps (`check_request`, `begin`, the stages) that the tasks of a scheduled run
(`pipelines.model_pruning.tasks`, the Airflow DAGs) call one by one.
"""

from __future__ import annotations

from curation import rundir
from curation.driver import run_stages, stage_digests
from curation.errors import CurateError
from curation.executors import make_executor
from curation.lease import LEASE_NAME, Lease
from curation.stage import Context, Stage
from curation.storage import Folder
from pipelines.model_pruning import schema
from pipelines.model_pruning.config import (
    ModelSettings,
    PruneConfig,
    StructuredConfig,
    SweepConfig,
)
from pipelines.model_pruning.data import load_data
from pipelines.model_pruning.methods import prune_masks
from pipelines.model_pruning.network import check_prunable, dense_network, weights
from pipelines.model_pruning.pipeline import (
    PRUNE,
    STRUCTURED,
    SWEEP,
    prune_stages,
    structured_stages,
    sweep_stages,
)

VERSIONED = ("curate", "torch", "torchvision", "timm", "numpy")


def versions() -> dict[str, str]:
    return rundir.package_versions(VERSIONED)


def preflight(config: ModelSettings, arms: list[tuple[str, float]]) -> None:
    """Every user error a run can meet, before anything is written: `arms` are the
    (method, final sparsity) pairs the run will prune to."""
    data = load_data(config)
    net = dense_network(config, data.classes)
    check_prunable(net, config)
    dense = weights(net, config)
    for method, sparsity in arms:
        prune_masks(method, dense, sparsity, None, config.seed, config.min_kept,
                    **config.nm_options)  # fmt: skip


def _holds_run(folder: Folder, pipeline: str, run_dir: str) -> bool:
    """The folder is the output (or run directory) of a curate run of `pipeline`: its marker
    names `run_dir` (whose config, once written, is of `pipeline`), or it is that run."""
    named = folder.read_json(rundir.MARKER)["run_dir"] if folder.exists(rundir.MARKER) else None
    if named is not None and named != run_dir:
        return False
    run = Folder(run_dir)
    if not run.exists(rundir.CONFIG):
        return named is not None
    return rundir.read_config(run)["pipeline"] == pipeline


def claim_output(config: ModelSettings, pipeline: str) -> None:
    """An empty (or new) output folder, or one that holds this kind of run already (resume);
    anything else is refused: the run never deletes or overwrites what it did not write."""
    for option, folder in (("--output", Folder(config.output)),
                           ("--run-dir", Folder(config.run_dir))):  # fmt: skip
        entries = [e for e in folder.listdir()
                   if e != LEASE_NAME and (e != "_run" or option == "--run-dir")]  # fmt: skip
        if entries and not _holds_run(folder, pipeline, config.run_dir):
            raise CurateError(
                f"{option} {folder.url} is not empty ({len(entries)} entries) and holds no "
                f"curate {pipeline} run: choose an empty folder"
            )


def check_request(config: ModelSettings, pipeline: str, arms: list[tuple[str, float]]) -> None:
    """Everything about the request that can be wrong, checked before any folder is created."""
    preflight(config, arms)
    claim_output(config, pipeline)


def begin(config: ModelSettings, pipeline: str, stages: list[Stage]) -> None:
    """With the lease held: the output marked as this run's and the run recorded."""
    Folder(config.output).write_json({"run_dir": config.run_dir}, rundir.MARKER)
    rundir.write_config(Folder(config.run_dir), pipeline, config.model_dump(),
                        stage_digests(stages, config), versions())  # fmt: skip


def _run(config: ModelSettings, pipeline: str, stages: list[Stage], arms) -> dict:
    check_request(config, pipeline, arms)
    executor = make_executor(config.executor, config.workers, config.scheduler)
    out = Folder(config.output)
    try:
        out.makedirs()
        with Lease(out) as lease:
            begin(config, pipeline, stages)
            run_stages(stages, Context(Folder(config.run_dir), config), executor, lease.check)
    finally:
        executor.close()
    return out.read_json(schema.SUMMARY)


def prune_arms(config: PruneConfig) -> list[tuple[str, float]]:
    """The (method, final sparsity) a prune run reaches: what the preflight tries."""
    return [(config.method, config.sparsity)]


def sweep_arms(config: SweepConfig) -> list[tuple[str, float]]:
    """Each method at the sweep's largest sparsity: the hardest target of each."""
    return [(method, max(config.sparsities)) for method in config.methods]


def prune(config: PruneConfig) -> dict:
    """Run (or resume) `curate model prune`; returns summary.json."""
    return _run(config, PRUNE, prune_stages(config), prune_arms(config))


def sweep(config: SweepConfig) -> dict:
    """Run (or resume) `curate model sweep`; returns summary.json."""
    return _run(config, SWEEP, sweep_stages(config), sweep_arms(config))


def structured_preflight(config: StructuredConfig) -> None:
    """The extra installed, and every importance able to reach the largest target on the
    dense network (a trial pruning of a copy, without fine-tuning)."""
    from pipelines.model_pruning.channels import channel_pruning, example_input
    from pipelines.model_pruning.schedules import ChannelArm
    from pipelines.model_pruning.structured import prune_channels, require_torch_pruning

    require_torch_pruning()
    data = load_data(config)
    net = dense_network(config, data.classes)
    for importance in config.importances:
        arm = ChannelArm(importance, max(config.amounts), config.seed, False)
        prune_channels(net, example_input(config), [arm.amount], config.unit,
                       channel_pruning(config, arm))  # fmt: skip


def structured(config: StructuredConfig) -> dict:
    """Run (or resume) `curate model structured`; returns summary.json."""
    structured_preflight(config)
    return _run(config, STRUCTURED, structured_stages(config), [])
