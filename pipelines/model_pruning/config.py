"""The resolved configuration of `curate model prune` and `curate model sweep`, validated before
anything is written. Each option is declared once, here; the CLI is generated from the fields.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from curation.errors import CurateError
from curation.fields import (
    CLI,
    KD_MODES,
    Count,
    FloatList,
    Fraction,
    NameList,
    Natural,
    OpenFraction,
    Positive,
    validated,
)
from curation.storage import absolute

METHODS = ("global", "layerwise", "random", "random-erk", "lamp")
SCHEDULES = ("one-shot", "gradual", "imp")
IMAGENET_MEAN = [0.485, 0.456, 0.406]  # what the CIFAR ResNets, timm and torchvision expect
IMAGENET_STD = [0.229, 0.224, 0.225]
GRADUAL_LEVELS = 5
IMP_RATE = 0.2  # Frankle & Carbin: each level prunes 20% of the remaining weights


def _one_pattern(value):
    """A shard option is one pattern (braces and globs allowed), or a list of them."""
    return [value] if isinstance(value, str) else value


ShardList = Annotated[list[str], BeforeValidator(_one_pattern)]


class ModelSettings(BaseModel):
    """What every model-pruning run has: the network, the data, the schedule, the training
    recipe and where it runs. `steps` is the fine-tuning budget: after a one-shot prune, in all
    across a gradual schedule's levels, and per level for IMP (every level retrains)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(
        description="Network: timm:NAME, torchvision:NAME or module:function "
        "(e.g. pipelines.cifar_resnet:resnet20)."
    )
    checkpoint: str | None = Field(
        None,
        description="Dense weights: a state_dict file (read with weights_only=True); default: "
        "the network's seeded initialisation.",
    )
    train: ShardList = Field(
        description="Training shards with labels (.cls or a json field); the output of "
        "`curate prune` works as it is."
    )
    eval: ShardList = Field(description="Evaluation shards with labels (the accuracy reported).")
    output: str = Field(description="Folder for the pruned model and summary.",
                        json_schema_extra={CLI: "-o"})  # fmt: skip
    run_dir: str = Field(None, description="Run directory (default: OUTPUT/_run).",
                         validate_default=True)  # fmt: skip
    schedule: Literal[SCHEDULES] = Field(  # type: ignore[valid-type]
        "one-shot", description="one-shot, gradual (Zhu & Gupta's cubic) or imp (rewinding)."
    )
    levels: Count | None = Field(
        None,
        description=f"Pruning levels: gradual's events (default {GRADUAL_LEVELS}); imp's levels "
        f"(default: as many as --imp-rate needs to reach --sparsity).",
    )
    steps: Natural = Field(300, description="Fine-tuning steps (per level for imp).")
    batch_size: Count = Field(128, description="Samples per step.")
    lr: Positive = Field(0.01, description="Peak learning rate (warm-up, then cosine decay).")
    optimizer: Literal["sgd", "adamw"] = Field("sgd", description="sgd (Nesterov) or adamw.")
    weight_decay: float = Field(5e-4, ge=0, description="Weight decay.")
    augment: bool = Field(True, description="Random 4-pixel crop and flip while training.")
    alpha: float | None = Field(
        None,
        ge=0,
        le=1,
        description="KD weight; default 1 - f/2, f the kept fraction of a curated training set "
        "(1 otherwise).",
    )
    temperature: Positive = Field(4.0, description="KD temperature T.")
    exclude: NameList = Field([], description="Prunable layers left dense, e.g. the classifier.")
    min_kept: Fraction | None = Field(
        None, description="global: every layer keeps at least this fraction (MT)."
    )
    image_size: Count = Field(32, description="Image side the network takes.")
    mean: FloatList = Field(IMAGENET_MEAN, description="Input normalisation mean (RGB).")
    std: FloatList = Field(IMAGENET_STD, description="Input normalisation std (RGB).")
    label_field: str = Field("label", description="json field holding the label without .cls.")
    classes: Count | None = Field(None, description="Classes (default: the largest label + 1).")
    seed: Natural = Field(0, description="Seed of every random choice.")
    threads: Count | None = Field(
        None,
        description="torch threads per unit (default: the worker's share of the cores); fix it "
        "for the same numbers under every executor.",
    )
    device: str = Field("cpu", description="cpu or cuda.")
    executor: Literal["local", "dask"] = Field("local", description="local or dask.")
    scheduler: str | None = Field(
        None, description="Dask scheduler address (default: a LocalCluster)."
    )
    workers: Count = Field(1, description="Worker processes.")

    @field_validator("run_dir", mode="before")
    @classmethod
    def _default_run_dir(cls, value: str | None, info) -> str:
        return value or f"{info.data['output'].rstrip('/')}/_run"

    @field_validator("mean", "std")
    @classmethod
    def _three_channels(cls, values: list[float]) -> list[float]:
        if len(values) != 3:
            raise ValueError(f"takes 3 numbers (R,G,B), got {len(values)}")
        return values

    @field_validator("std")
    @classmethod
    def _positive_std(cls, values: list[float]) -> list[float]:
        if min(values) <= 0:
            raise ValueError(f"must be positive, got {values}")
        return values

    @model_validator(mode="after")
    def _consistent(self) -> ModelSettings:
        if self.scheduler and self.executor != "dask":
            raise ValueError("--scheduler needs --executor dask")
        if self.schedule == "one-shot" and self.levels not in (None, 1):
            raise ValueError("--levels: one-shot prunes once; use --schedule gradual or imp")
        return self

    @property
    def gradual_levels(self) -> int:
        return self.levels or GRADUAL_LEVELS


def parse_nm(text: str) -> tuple[int, int]:
    """`N:M` as integers with 0 < N < M."""
    n, _, m = str(text).partition(":")
    if not (n.strip().isdigit() and m.strip().isdigit()) or not 0 < int(n) < int(m):
        raise ValueError(f"--nm takes N:M with 0 < N < M, e.g. 2:4; got {text!r}")
    return int(n), int(m)


class PruneConfig(ModelSettings):
    """One pruned network: a method, a sparsity, a schedule; every level is a stage."""

    method: Literal[(*METHODS, "nm")] = Field(  # type: ignore[valid-type]
        "global", description=", ".join(METHODS) + "; nm: N:M semi-structured (--nm)."
    )
    sparsity: Fraction | None = Field(
        None,
        description="Final sparsity of the prunable weights, in [0, 1); required but with "
        "--method nm (1 - N/M).",
    )
    nm: str = Field("2:4", description="nm: keep the N largest of every M consecutive inputs.")
    nm_layout: Literal["channels-last", "rows"] = Field(
        "channels-last",
        description="nm: group Conv2d weights along the input channels at each kernel position "
        "(NVIDIA ASP, channels-last), or along the row-major in*kh*kw.",
    )
    kd: bool = Field(False, description="Fine-tune with KD from the dense model.")
    imp_rate: OpenFraction | None = Field(
        None, description=f"imp: fraction of the remaining weights pruned per level ({IMP_RATE})."
    )
    rewind_steps: Natural = Field(
        0, description="imp: rewind survivors to their weights at this step of level 0."
    )
    controls: bool = Field(
        False,
        description="Also train, at every level, the same mask re-initialised and a random "
        "mask of the same per-layer sparsity.",
    )

    @model_validator(mode="before")
    @classmethod
    def _nm_sparsity(cls, fields: dict) -> dict:
        """nm's sparsity is 1 - N/M: given as well, it is refused rather than ignored."""
        if isinstance(fields, dict) and fields.get("method") == "nm":
            n, m = parse_nm(fields.get("nm", "2:4"))
            if fields.get("sparsity") not in (None, 1 - n / m):  # a recorded config has it
                raise ValueError("--method nm: the sparsity is 1 - N/M (--nm), not --sparsity")
            fields = {**fields, "sparsity": 1 - n / m}
        return fields

    @field_validator("nm")
    @classmethod
    def _nm(cls, value: str) -> str:
        parse_nm(value)
        return value

    @model_validator(mode="after")
    def _schedule_options(self) -> PruneConfig:
        if self.sparsity is None:
            raise ValueError("--sparsity is required (but with --method nm)")
        imp = self.schedule == "imp"
        if not imp and (self.imp_rate is not None or self.rewind_steps):
            raise ValueError("--imp-rate and --rewind-steps need --schedule imp")
        if imp and self.levels is not None and self.imp_rate is not None:
            raise ValueError("--schedule imp takes --levels or --imp-rate, not both")
        if imp and self.rewind_steps > self.steps:
            raise ValueError(
                f"--rewind-steps {self.rewind_steps} is past level 0's {self.steps} steps"
            )
        if self.controls and self.schedule == "gradual":
            raise ValueError("--controls compare masks level by level: use one-shot or imp")
        if self.method == "nm" and self.schedule != "one-shot":
            raise ValueError("--method nm prunes one-shot (every group at once)")
        if self.min_kept is not None and self.method != "global":
            raise ValueError("--min-kept is the minimum threshold of --method global")
        if self.kd and not imp and self.checkpoint is None:
            raise ValueError(
                "--kd needs a trained dense model as teacher: give --checkpoint (imp trains "
                "one at level 0)"
            )
        return self

    @property
    def teacher_trained(self) -> bool:
        """Level 0 trains the dense model (IMP); otherwise it is the checkpoint as given."""
        return self.schedule == "imp"

    @property
    def nm_options(self) -> dict:
        """What `methods.prune_masks` takes for nm: N:M and the Conv2d layout."""
        if self.method != "nm":
            return {}
        return {"nm": parse_nm(self.nm), "channels_last": self.nm_layout == "channels-last"}


class MemberArms:
    """What a run of members (seeds x KD modes, the dense model as given) derives from its
    `seed`, `seeds` and `kd` fields: sweep and structured alike."""

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    @property
    def kd_modes(self) -> tuple[bool, ...]:
        return KD_MODES[self.kd]

    @property
    def teacher_trained(self) -> bool:
        return False


class SweepConfig(MemberArms, ModelSettings):
    """Methods x sparsities x seeds (x KD), each member a unit of one stage."""

    schedule: Literal["one-shot", "gradual"] = Field(
        "one-shot", description="one-shot or gradual (imp runs level by level: model prune)."
    )
    methods: NameList = Field(list(METHODS), description="Methods, comma-separated.")
    sparsities: FloatList = Field([0.5, 0.8, 0.9], description="Sparsities, comma-separated.")
    seeds: Count = Field(1, description="Seeds per member, from --seed.")
    kd: Literal["off", "on", "both"] = Field(
        "off", description="Fine-tune with KD: off, on or both."
    )

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: list[str]) -> list[str]:
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise ValueError(f"unknown method {(unknown or [''])[0]!r}: choose from "
                             f"{', '.join(METHODS)}")  # fmt: skip
        return list(dict.fromkeys(methods))

    @field_validator("sparsities")
    @classmethod
    def _fractions(cls, sparsities: list[float]) -> list[float]:
        if not sparsities or any(not 0.0 <= s < 1.0 for s in sparsities):
            raise ValueError(f"each must be in [0, 1), got {sparsities}")
        return sorted(set(sparsities))

    @model_validator(mode="after")
    def _sweep_options(self) -> SweepConfig:
        if self.min_kept is not None and "global" not in self.methods:
            raise ValueError("--min-kept is the minimum threshold of method global")
        if self.kd != "off" and self.checkpoint is None:
            raise ValueError("--kd needs a trained dense model as teacher: give --checkpoint")
        return self

    @property
    def nm_options(self) -> dict:
        return {}


def model_config(schema: type[ModelSettings], train: list[str] | str, eval: list[str] | str,
                 output: str, checkpoint: str | None = None, run_dir: str | None = None,
                 **options) -> ModelSettings:  # fmt: skip
    """The config from what a user gives (the CLI, the Python API): shard patterns expanded,
    local paths made absolute; a problem is a `CurateError` naming the option."""
    from shards.paths import expand_shards

    config = validated(
        schema,
        train=_one_pattern(train),
        eval=_one_pattern(eval),
        output=absolute(output),
        checkpoint=absolute(checkpoint) if checkpoint else None,
        run_dir=absolute(run_dir) if run_dir else None,
        **options,
    )
    expanded = {}
    for option in ("train", "eval"):
        try:
            expanded[option] = expand_shards(getattr(config, option))
        except CurateError as exc:
            raise CurateError(f"--{option}: {exc}") from None
    return config.model_copy(update=expanded)


IMPORTANCES = ("l1", "l2", "random", "bn_scale")  # channel importances (structured.py)


class StructuredConfig(MemberArms, ModelSettings):
    """Channel pruning with real removal (torch-pruning): importances x targets x seeds
    (x KD), each member a unit; `--exclude` names the layers whose outputs are kept (default:
    the last Linear)."""

    schedule: Literal["one-shot", "gradual"] = Field(
        "one-shot",
        description="one-shot, or gradual: --levels pruning steps on the cubic schedule, "
        "fine-tuned between steps (--steps split between them).",
    )
    importances: NameList = Field(["l2"], description="Group l1, l2, random or bn_scale.")
    macs: FloatList | None = Field(
        None, description="MACs reduction factors, e.g. 2 for half the MACs (default 2)."
    )
    ratios: FloatList | None = Field(
        None, description="Channel ratios removed from every group (instead of --macs)."
    )
    scope: Literal["layer", "global"] = Field(
        "global", description="global: rank all groups' channels together; layer: each alike."
    )
    round_to: Count | None = Field(None, description="Keep channel counts at multiples of this.")
    max_layer_ratio: OpenFraction = Field(
        0.9, description="No group loses more than this fraction of its channels."
    )
    seeds: Count = Field(1, description="Seeds per member, from --seed.")
    kd: Literal["off", "on", "both"] = Field(
        "off", description="Fine-tune with KD: off, on or both."
    )
    scratch: bool = Field(
        False,
        description="Also train each pruned architecture from a fresh initialisation at the "
        "same steps (Liu et al. 2019).",
    )

    @field_validator("importances")
    @classmethod
    def _known_importances(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in IMPORTANCES]
        if unknown or not names:
            raise ValueError(f"unknown importance {(unknown or [''])[0]!r}: choose from "
                             f"{', '.join(IMPORTANCES)}")  # fmt: skip
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _one_target(self) -> StructuredConfig:
        if self.macs is not None and self.ratios is not None:
            raise ValueError("give --macs or --ratios, not both")
        if self.macs is not None and (not self.macs or min(self.macs) < 1):
            raise ValueError(f"--macs: reduction factors are at least 1, got {self.macs}")
        if self.ratios is not None and any(not 0 < r <= self.max_layer_ratio for r in self.ratios):
            limit = self.max_layer_ratio
            raise ValueError(f"--ratios: each in (0, --max-layer-ratio {limit}], got {self.ratios}")
        if self.kd != "off" and self.checkpoint is None:
            raise ValueError("--kd needs a trained dense model as teacher: give --checkpoint")
        return self

    @property
    def unit(self) -> str:
        return "channels" if self.ratios is not None else "macs"

    @property
    def amounts(self) -> list[float]:
        return sorted(set(self.ratios if self.ratios is not None else self.macs or [2.0]))


class BenchConfig(BaseModel):
    """How `curate model bench` times the dense and the pruned networks of a run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_sizes: FloatList = Field([1, 64], description="Batch sizes, comma-separated.")
    threads: Count = Field(1, description="CPU threads, fixed for both networks.")
    warmup: Natural = Field(10, description="Untimed passes first.")
    repeats: Count = Field(50, description="Timed passes; the median is reported.")
    device: Literal["cpu", "cuda", "auto"] = Field(
        "auto", description="cpu, cuda, or auto: the CPU, and the GPU when there is one."
    )

    @field_validator("batch_sizes")
    @classmethod
    def _whole(cls, sizes: list[float]) -> list[float]:
        if not sizes or any(s < 1 or s != int(s) for s in sizes):
            raise ValueError(f"takes whole numbers of at least 1, got {sizes}")
        return [int(s) for s in sizes]
