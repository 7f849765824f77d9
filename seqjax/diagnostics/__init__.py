"""Diagnostics for recurrent models: gradient flow over time (vanishing / exploding gradients)."""

from seqjax.diagnostics.gradient_flow import (
    jacobian_norms,
    loss_gradient_norms,
    model_gradient_norms,
)

__all__ = ["jacobian_norms", "loss_gradient_norms", "model_gradient_norms"]
