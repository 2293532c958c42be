"""How `curate validate` and `curate sweep` train, test and compare their models, and what a
sweep varies. Declaring these imports nothing heavy (the CLI is generated from them)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from curation.fields import (
    CLI,
    KD_MODES,
    Count,
    FloatList,
    NameList,
    Natural,
    Positive,
    comma_separated,
)
from metrics.kd import kd_alpha
from pipelines.data_pruning import criteria
from pipelines.data_pruning.config import SELECTION_OPTIONS, PruneSettings
from pipelines.data_pruning.criteria import ranked

MIN_STEPS = 200  # a floor for small data sets, where a few epochs are only a few steps
DEFAULT_STUDENT = "pipelines.cifar_resnet:resnet20"
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
NETWORK_NAME = re.compile(r"^(timm:|torchvision:)\S+$|^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
RUN_CONTROL = {"seeds", "executor", "scheduler", "workers"}  # how, not what: never hashed


class ValidationConfig(BaseModel):
    """`steps` is the matched compute: every model takes exactly this many optimisation steps
    of `batch_size` samples, whatever its subset's size. By default it is `epochs` passes
    over the pool (every labelled candidate of the run), at least MIN_STEPS."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    on: Literal["embeddings", "images"] = Field(
        "embeddings",
        description="embeddings: a probe on the stored embeddings (fast); images: a network "
        "trained on the decoded images (--student).",
    )
    probe: Literal["linear", "mlp"] = Field(
        "linear", description="Probe on embeddings: linear or mlp."
    )
    hidden: Count = Field(512, description="Hidden units of the mlp probe.",
                          json_schema_extra={CLI: False})  # fmt: skip
    student: str = Field(
        DEFAULT_STUDENT,
        description="Network trained with --on images: timm:NAME, torchvision:NAME or "
        "module:function.",
    )
    image_size: Count = Field(32, description="Image side for --on images and image teachers.")
    epochs: Positive = Field(30.0, description="Epochs over the pool, for --steps.")
    steps: Count | None = Field(
        None,
        description="Optimisation steps of every model (matched compute); default: --epochs over "
        "the pool.",
    )
    batch_size: Count = Field(256, description="Samples per optimisation step.")
    lr: Positive | None = Field(
        None, description="Learning rate (default: AdamW 1e-3 on embeddings, SGD 0.1 on images)."
    )
    weight_decay: float = Field(5e-4, description="Weight decay.",
                                json_schema_extra={CLI: False})  # fmt: skip
    temperature: Positive = Field(4.0, description="KD temperature T.")
    alpha: float | None = Field(None, description="KD weight; default 1 - kept_fraction / 2.")
    seeds: Count = Field(1, description="Seeds per model (a new random subset for each).")
    seed: Natural = Field(0, description="First seed; the teachers train with it.")
    eval: str | None = Field(
        None,
        description="Evaluation shards (path, glob or brace range), e.g. ImageNet val: embedded "
        "with the run's model, never clustered, scored or selected. Default: the run's "
        "held-out samples (curate prune --holdout).",
    )
    teacher: str | None = Field(
        None,
        description="KD teacher: a network (timm:NAME, torchvision:NAME or module:function, with "
        "--teacher-checkpoint) or a teacher.pt written by curate validate. Default: trained on "
        "the pool.",
    )
    teacher_checkpoint: str | None = Field(
        None, description="Weights of a --teacher network (read with weights_only=True)."
    )
    teacher_mean: FloatList = Field(
        IMAGENET_MEAN,
        description="Per-channel mean a --teacher network's inputs are normalised by.",
    )
    teacher_std: FloatList = Field(
        IMAGENET_STD, description="Per-channel std a --teacher network's inputs are normalised by."
    )
    teacher_cache: bool = Field(
        False,
        description="Compute the teacher's outputs once on the un-augmented inputs (offline KD): "
        "far cheaper with a large teacher; the student still sees augmented images.",
    )
    device: str = Field("cpu", description="cpu or cuda.")
    executor: Literal["local", "dask"] = Field("local", description="local or dask.")
    scheduler: str | None = Field(
        None, description="Dask scheduler address (default: a LocalCluster)."
    )
    workers: Count = Field(1, description="Worker processes.")

    @field_validator("alpha")
    @classmethod
    def _alpha_range(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"--alpha must be in [0, 1], got {value}")
        return value

    @field_validator("teacher_mean", "teacher_std")
    @classmethod
    def _three_channels(cls, values: list[float]) -> list[float]:
        if len(values) != 3:
            raise ValueError(f"takes three values (R, G, B), got {len(values)}")
        return values

    @model_validator(mode="after")
    def _teacher_options(self) -> ValidationConfig:
        if self.teacher_checkpoint and self.teacher_kind != "network":
            raise ValueError("--teacher-checkpoint needs --teacher NAME (the network it fits)")
        if self.teacher_kind == "network" and not self.teacher_checkpoint:
            raise ValueError(f"--teacher {self.teacher} needs --teacher-checkpoint FILE: an "
                             "untrained network teaches nothing")  # fmt: skip
        if self.scheduler and self.executor != "dask":
            raise ValueError("--scheduler needs --executor dask")
        return self

    @property
    def teacher_kind(self) -> Literal["trained", "network", "checkpoint"]:
        """trained: validate trains it on the pool; network: a named network and its weights;
        checkpoint: a teacher.pt written by curate validate."""
        if self.teacher is None:
            return "trained"
        return "network" if NETWORK_NAME.match(self.teacher) else "checkpoint"

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return 0.1 if self.on == "images" else 1e-3

    def total_steps(self, pool_size: int) -> int:
        if self.steps is not None:
            return self.steps
        return max(MIN_STEPS, round(self.epochs * pool_size / self.batch_size))

    def alpha_for(self, kept_fraction: float) -> float:
        """The override when given, else the documented rule `kd_alpha`."""
        return self.alpha if self.alpha is not None else kd_alpha(kept_fraction)

    def hashed(self) -> dict:
        """What the models depend on (not how many seeds, nor where they run)."""
        return self.model_dump(exclude=RUN_CONTROL)


class SweepPlan(BaseModel):
    """What `curate sweep` varies besides the criterion options: rates, metrics (every
    criterion by default) and KD."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rates: FloatList = Field([0.3, 0.5, 0.7, 0.9], description="Pruning rates, comma-separated.")
    metrics: NameList = Field(
        default_factory=ranked, description="Metrics, comma-separated, or all."
    )
    kd: Literal["off", "on", "both"] = Field("both", description="off, on or both.")

    @field_validator("rates")
    @classmethod
    def _fractions(cls, rates: list[float]) -> list[float]:
        if not rates or any(not 0.0 < r < 1.0 for r in rates):
            raise ValueError(f"--rates must be fractions removed, each in (0, 1); got {rates}")
        return sorted(set(rates))

    @field_validator("metrics")
    @classmethod
    def _known(cls, metrics: list[str]) -> list[str]:
        if metrics == ["all"]:
            return ranked()
        unknown = [m for m in metrics if m not in ranked()]
        if unknown or not metrics:
            raise ValueError(f"unknown metric {(unknown or [''])[0]!r}: choose from "
                             f"{', '.join(ranked())}")  # fmt: skip
        return list(dict.fromkeys(metrics))

    @property
    def kd_modes(self) -> tuple[bool, ...]:
        return KD_MODES[self.kd]


def _values(value: Any) -> Any:
    """`a,b` typed once on the command line, or one value; `none` stands for an option's
    unset value."""
    if value is None:
        return None
    values = comma_separated(value)
    values = values if isinstance(values, list) else [values]
    return [None if v in ("none", None) else v for v in values]


def _listed(annotation: Any, field: Any) -> tuple[Any, Any]:
    """A criterion option as a sweep option: a list of its values, or None for the run's."""
    help_text = f"{field.description} Comma-separated values are compared (default: the run's)."
    return (Annotated[list[annotation], BeforeValidator(_values)] | None,
            Field(None, description=help_text))  # fmt: skip


def _selection_options() -> dict[str, tuple[Any, Any]]:
    """Every criterion option of the registry and the options every selection has."""
    shared = {name: PruneSettings.model_fields[name] for name in SELECTION_OPTIONS}
    return {**{n: (f.annotation, f) for n, f in shared.items()}, **criteria.options()}


SweepOptions = create_model(
    "SweepOptions",
    __config__=ConfigDict(frozen=True, extra="forbid"),
    **{name: _listed(a, f) for name, (a, f) in _selection_options().items()},
)
SweepOptions.__doc__ = """Every selection option (the criteria's and `--per-class`),
each taking one or more values: a sweep compares every combination of the values given, for
each metric the option changes."""
