"""The resolved configuration of a `curate prune` run, validated before anything is written.

Each option is declared once, here (what every run has) or in its criterion's module (what
only that criterion reads); `PruneConfig` is the two together, and the CLI is generated from
its fields.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from curation.errors import CurateError
from curation.fields import CLI, Count, Fraction, Natural, OpenFraction, validated
from curation.storage import absolute, storage_options
from pipelines.data_pruning import criteria
from pipelines.data_pruning.criteria import keep_list

DEFAULT_MODEL = "ViT-B-32"
# Options that shape every criterion's selection besides the criterion's own: a sweep compares
# their values as it compares the criteria's options.
SELECTION_OPTIONS = ("per_class",)


class PruneSettings(BaseModel):
    """The options every prune run has; see `PruneConfig`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shards: list[str] = Field(description="Input shards, expanded.", json_schema_extra={CLI: False})
    given_shards: list[str] = Field(
        default_factory=list,
        description="Each input shard as the user gave it (a relative path stays relative, a "
        "URL a URL): what decisions.parquet names; the shards themselves when not given.",
        json_schema_extra={CLI: False},
    )
    fingerprints: list[str] = Field(
        default_factory=list,
        description="Each input shard's identity when the run started (size and mtime, or ETag).",
        json_schema_extra={CLI: False},
    )
    storage_options: dict = Field(
        default_factory=dict,
        description="fsspec options for every URL of the run, as JSON (endpoint_url, key, "
        "secret, anon...); credentials may also come from the environment.",
    )
    output: str = Field(description="Folder for the pruned shards.", json_schema_extra={CLI: "-o"})
    run_dir: str = Field(None, description="Run directory (default: OUTPUT/_run).",
                         validate_default=True)  # fmt: skip
    rate: OpenFraction | None = Field(
        None,
        description="Fraction of samples to remove, in (0, 1) (required, except with --keep-list).",
    )
    metric: Literal[tuple(criteria.CRITERIA)] = Field(  # type: ignore[valid-type]
        "prototypicality", description=", ".join(criteria.CRITERIA) + "."
    )
    model: str = Field(
        DEFAULT_MODEL,
        description="open_clip model name, open_clip model-config JSON, or timm:NAME.",
    )
    pretrained: str = Field(
        None,
        description="open_clip tag, local checkpoint file, or 'random' (default: open_clip's "
        "first tag for the model; required for a model-config file or timm:).",
        validate_default=True,
    )
    embeddings: str | None = Field(
        None,
        description="Precomputed embeddings instead of --model: a clip-retrieval folder "
        "(img_emb/, metadata/) or a folder of DataComp .npz files (one per shard, by uid).",
    )
    embedding_field: str = Field(
        "b32_img", description="The array of DataComp's .npz files to use (b32_img, l14_img...)."
    )
    clusters: Count = Field(100, description="k-means clusters.")
    kmeans_iterations: Count = Field(20, description="k-means iterations.")
    max_points_per_centroid: Count = Field(
        256, description="k-means trains on at most clusters x this many samples (seeded)."
    )
    neighbors: Count = Field(20, description="dbp: nearest centroids in d_inter.")
    seed: Natural = Field(0, description="Seed of every random choice.")
    holdout: Fraction = Field(
        0.0,
        description="Fraction of samples set aside for `curate validate`, chosen by a hash of "
        "their key: never clustered, scored, selected or written to the pruned shards.",
    )
    batch_size: Count = Field(64, description="Images per model forward.")
    device: str = Field("cpu", description="cpu or cuda.")
    label_field: str = Field(
        "label", description="json field holding the label when there is no .cls."
    )
    executor: Literal["local", "dask"] = Field("local", description="local or dask.")
    scheduler: str | None = Field(
        None, description="Dask scheduler address (default: a LocalCluster)."
    )
    workers: Count = Field(1, description="Worker processes.")
    per_class: bool = Field(False, description="Each class keeps its share of the kept total.")
    filter: str | None = Field(
        None, description="Before the metric: clip-score:T (threshold) or clip-score-top:F."
    )

    @field_validator("pretrained", mode="before")
    @classmethod
    def _default_weights(cls, value: str | None, info) -> str:
        if value is not None:
            return value
        from pipelines.embedders import default_pretrained  # imports open_clip: only when needed

        return default_pretrained(info.data.get("model", DEFAULT_MODEL))

    @field_validator("run_dir", mode="before")
    @classmethod
    def _default_run_dir(cls, value: str | None, info) -> str:
        return value or f"{info.data['output'].rstrip('/')}/_run"

    @field_validator("filter")
    @classmethod
    def _known_filter(cls, value: str | None) -> str | None:
        if value is None:
            return value
        kind, _, number = value.partition(":")
        if kind not in criteria.FILTERS or not number:
            raise ValueError(f"--filter takes clip-score:T or clip-score-top:F, got {value!r}")
        try:
            criteria.FILTERS[kind].check(kind, float(number))
        except ValueError as exc:
            raise ValueError(f"--filter {value!r}: {exc}") from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _given_as_expanded(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("given_shards") and "shards" in data:
            return {**data, "given_shards": data["shards"]}
        return data

    @model_validator(mode="before")
    @classmethod
    def _keep_list_selects(cls, data: Any) -> Any:
        """`--keep-list` is the selection: its metric, without a rate or the options that read
        embeddings; any other metric needs a rate."""
        if not isinstance(data, dict):
            return data
        if data.get("keep_list") is None:
            if data.get("metric") == keep_list.NAME:
                raise ValueError(f"--metric {keep_list.NAME} needs --keep-list FILE")
            if data.get("rate") is None:
                raise ValueError("--rate is required (the fraction of samples to remove), "
                                 "unless --keep-list gives the selection")  # fmt: skip
            return data
        if data.get("metric") not in (None, cls.model_fields["metric"].default, keep_list.NAME):
            raise ValueError(f"--keep-list is the selection: it takes no --metric "
                             f"(got {data['metric']})")  # fmt: skip
        for name in keep_list.NOT_WITH_KEEP_LIST:
            if data.get(name):
                option = "--" + name.replace("_", "-")
                raise ValueError(f"{option} does not apply with --keep-list: the list decides "
                                 "what is kept, from no embeddings")  # fmt: skip
        return {**data, "metric": keep_list.NAME}

    @model_validator(mode="after")
    def _scheduler_needs_dask(self) -> PruneSettings:
        if self.scheduler and self.executor != "dask":
            raise ValueError("--scheduler needs --executor dask")
        return self

    @property
    def needs_captions(self) -> bool:
        selected = criteria.active_filter(self)
        return selected is not None and selected.needs_captions


PruneConfig = create_model("PruneConfig", __base__=PruneSettings, **criteria.options())
PruneConfig.__doc__ = """Everything a run depends on; stages hash the parts they use."""


def prune_config(shards: list[str], output: str, run_dir: str | None = None,
                 **options) -> PruneConfig:  # fmt: skip
    """The config of a run from what a user gives (the CLI and the Python API): shard patterns
    expanded, local paths made absolute, the run directory by default OUTPUT/_run; a problem
    is a `CurateError` naming the option."""
    from shards.paths import file_identity, fingerprints, given_shards

    for option, path in (("--output", output), ("--run-dir", run_dir)):
        if path is not None and not path.strip():
            raise CurateError(f"{option} is empty: name a folder of its own")
    storage = storage_options(options.pop("storage_options", None))
    given = given_shards(shards, storage)
    urls = [absolute(s) for s in given]
    for path in ("embeddings", "keep_list"):
        if options.get(path):
            options[path] = absolute(options[path])
    if options.get("keep_list"):
        options["keep_list_identity"] = file_identity(options["keep_list"], storage)
    return validated(PruneConfig, shards=urls, output=absolute(output),
                     run_dir=absolute(run_dir) if run_dir else None,
                     given_shards=given, fingerprints=fingerprints(urls, storage),
                     storage_options=storage,
                     **options)  # fmt: skip
