"""What a worker sets up once before running units of a stage (the stage `setup` hook)."""

from __future__ import annotations

from curation.stage import Context, Lazy


def setup_threads(ctx: Context) -> None:
    """torch and FAISS use the worker's threads: the same count under every executor gives
    the same floating-point results, byte for byte."""
    import faiss
    import torch

    if torch.get_num_threads() != ctx.threads:
        torch.set_num_threads(ctx.threads)
    faiss.omp_set_num_threads(ctx.threads)


def setup_embedder(ctx: Context) -> None:
    """Threads, and the model loaded once per worker process (cached by `load_embedder`)."""
    from pipelines.embedders import load_embedder

    setup_threads(ctx)
    cfg = ctx.config
    load_embedder(cfg.model, cfg.pretrained, cfg.device)


THREADS = Lazy(f"{__name__}:setup_threads")  # the setup of every stage that runs torch or FAISS
