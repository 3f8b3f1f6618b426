"""Evaluation metrics (see DESIGN.md for the contracts)."""
from gan_jax.metrics.fid import StreamingStats, frechet_distance
from gan_jax.metrics.inception_score import inception_score
from gan_jax.metrics.kid import kernel_inception_distance
from gan_jax.metrics.modes import mode_metrics
from gan_jax.metrics.precision_recall import density_coverage, precision_recall
from gan_jax.metrics.two_sample import c2st, knn_classifier, mmd2

__all__ = [
    'StreamingStats', 'c2st', 'density_coverage', 'frechet_distance', 'inception_score',
    'kernel_inception_distance', 'knn_classifier', 'mmd2', 'mode_metrics', 'precision_recall',
]
