"""Evaluation metrics: functions of sample or feature arrays, each module citing its paper.

  frechet_distance(mu1, sigma1, mu2, sigma2)   FID (Heusel et al. 2017), float64; StreamingStats
                                               accumulates the means and covariances in batches.
  kernel_inception_distance(feats_a, feats_b)  KID (Bińkowski et al. 2018): unbiased MMD², cubic
                                               polynomial kernel, over random subsets.
  inception_score(probs, splits=10)            IS (Salimans et al. 2016), (mean, std) over splits.
  precision_recall(real, fake, k=3)            improved precision/recall (Kynkäänniemi et al. 2019).
  density_coverage(real, fake, k=5)            density/coverage (Naeem et al. 2020).
  mode_metrics(samples, centers, std)          modes, hq_fraction, reverse_kl of mixtures of
                                               Gaussians (PacGAN's protocol, Lin et al. 2018).
  mmd2, c2st, knn_classifier                   two-sample tests: kernel MMD with a permutation
                                               p-value, the classifier two-sample test.

The bar for FID, KID and IS is the agreement torch-fidelity publishes with the reference code
(FID and KID within 1e-6 relative, IS within 1e-3) on the same features; tests/test_metrics.py
checks them against closed forms and direct NumPy references.
"""
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
