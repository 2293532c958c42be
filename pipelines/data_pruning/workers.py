"""What a worker sets up once before running units of a stage (the stage `setup` hook)."""

from __future__ import annotations

from curation.seeds import child_seed
from curation.stage import Context, Lazy


def setup_threads(ctx: Context) -> None:
    """torch and FAISS use the worker's threads: the same count under every executor gives
    the same floating-point results, byte for byte."""
    import faiss
    import torch

    if torch.get_num_threads() != ctx.threads:
        torch.set_num_threads(ctx.threads)
    faiss.omp_set_num_threads(ctx.threads)


def embedder_of(config):
    """The run's embedder, loaded once per process (`load_embedder` is cached); untrained
    weights (`--pretrained random`) are drawn from the run's seed."""
    from pipelines.embedders import load_embedder

    return load_embedder(config.model, config.pretrained, config.device,
                         child_seed(config.seed, "weights"))  # fmt: skip


def setup_embedder(ctx: Context) -> None:
    """Threads, and the model loaded once per worker process."""
    setup_threads(ctx)
    embedder_of(ctx.config)


THREADS = Lazy(f"{__name__}:setup_threads")  # the setup of every stage that runs torch or FAISS
