"""Fréchet distance between Gaussians fitted to features (FID), and streaming feature statistics.

Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium" (arXiv:1706.08500):

  d² = ‖μ1 - μ2‖² + Tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^{1/2}),

in float64 numpy/scipy with the reference code's (pytorch-fid ``calculate_frechet_distance``)
handling of a singular or complex square root, so values agree with it on the same features.
FID proper uses Inception-v3 pool3 features (2048-d) of 50k samples; `StreamingStats` accumulates
their mean and covariance batch by batch, so the features never sit in memory at once.
"""
from typing import NamedTuple

import numpy as np
import scipy.linalg
from absl import logging


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
  """Fréchet (2-Wasserstein) distance² between N(mu1, sigma1) and N(mu2, sigma2), in float64.

  As pytorch-fid: if sqrtm(Σ1 Σ2) is not finite (a singular product, e.g. fewer samples than
  dimensions), it is retried with eps·I added to both covariances; a complex result is accepted
  (its real part taken) only if the imaginary parts of its diagonal are below 1e-3, else
  `ValueError`, as they mean the inputs are not covariance matrices.
  """
  mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
    raise ValueError(f'shapes do not match: mu {mu1.shape}, {mu2.shape}; '
                     f'sigma {sigma1.shape}, {sigma2.shape}')
  diff = mu1 - mu2
  covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
  if not np.isfinite(covmean).all():
    logging.warning('frechet_distance: singular product sigma1 @ sigma2; adding %g to the '
                    'diagonal of both covariances', eps)
    offset = eps * np.eye(mu1.shape[0])
    covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
  if np.iscomplexobj(covmean):
    imag = np.max(np.abs(np.diagonal(covmean).imag))
    if imag > 1e-3:
      raise ValueError(f'imaginary component {imag} in sqrtm(sigma1 @ sigma2)')
    covmean = covmean.real
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


class StreamingStats(NamedTuple):
  """Count, mean and centred sum of outer products M2 = Σ (x - mean)(x - mean)ᵀ, in float64.

  Batches merge by Chan et al.'s parallel update (1979), which stays accurate where the raw
  sum of outer products would cancel. Immutable, optax style::

    stats = StreamingStats.init(2048)
    for feats in batches:
      stats = stats.update(feats)
    mu, sigma = stats.finalize()
  """
  count: int
  mean: np.ndarray  # (D,)
  m2: np.ndarray    # (D, D)

  @classmethod
  def init(cls, dim: int) -> 'StreamingStats':
    return cls(0, np.zeros(dim), np.zeros((dim, dim)))

  def update(self, batch) -> 'StreamingStats':
    """Merges a (B, D) batch of features; B may vary from batch to batch."""
    batch = np.asarray(batch, np.float64).reshape(-1, self.mean.shape[0])
    n_b = batch.shape[0]
    if n_b == 0:
      return self
    mean_b = batch.mean(axis=0)
    centred = batch - mean_b
    count = self.count + n_b
    delta = mean_b - self.mean
    mean = self.mean + delta * (n_b / count)
    m2 = self.m2 + centred.T @ centred + np.outer(delta, delta) * (self.count * n_b / count)
    return StreamingStats(count, mean, m2)

  def finalize(self) -> tuple:
    """(mu, sigma) with the unbiased covariance M2 / (n - 1), as np.cov and pytorch-fid."""
    if self.count < 2:
      raise ValueError(f'need at least 2 samples for a covariance, got {self.count}')
    return self.mean, self.m2 / (self.count - 1)
