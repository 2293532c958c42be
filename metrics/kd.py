"""Knowledge distillation for training on a pruned subset (Ben-Baruch et al., "Distilling the
Knowledge in Data Pruning"): the loss, and how much weight the teacher gets."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by the loss only: the alpha rule is needed without it
    import torch

ALPHA_AT_FULL_DATA = 0.5


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """`(1 - alpha) * CE(y, s) + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))`, batch mean.

    The T^2 keeps the soft term's gradient on the scale of the hard term's as T changes
    (Hinton et al. 2015), so alpha alone sets the balance."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    import torch.nn.functional as F

    hard = F.cross_entropy(student_logits, labels)
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=-1),
        F.log_softmax(teacher_logits / temperature, dim=-1),
        reduction="batchmean",
        log_target=True,
    )
    return (1.0 - alpha) * hard + alpha * temperature**2 * soft


def kd_alpha(kept_fraction: float) -> float:
    """The teacher's weight for a student trained on `kept_fraction` of the data:
    `alpha = 1 - f / 2`, from 0.5 with all the data to 1 (labels ignored) as f goes to 0.

    Ben-Baruch et al. found the best alpha grows as the kept fraction shrinks, reaching
    nearly pure distillation at 10% kept: a small subset leaves the labels' noise and the
    subset's bias uncorrected, and the teacher (which saw everything) corrects both. At full
    data the rule gives the common balanced KD weight 0.5; at 10% kept it gives 0.95."""
    if not 0.0 < kept_fraction <= 1.0:
        raise ValueError(f"kept fraction must be in (0, 1], got {kept_fraction}")
    return 1.0 - (1.0 - ALPHA_AT_FULL_DATA) * kept_fraction
