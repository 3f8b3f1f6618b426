"""Evaluation metrics (see DESIGN.md for the contracts)."""
from gan_jax.metrics.modes import mode_metrics

__all__ = ['mode_metrics']
