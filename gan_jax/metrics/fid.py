"""Fréchet distance between Gaussians fitted to features (FID), and streaming feature statistics.

Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium" (arXiv:1706.08500):

  d² = ‖μ1 - μ2‖² + Tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^{1/2}),

in float64 numpy. The trace of the square root is computed from symmetric eigendecompositions
(`np.linalg.eigh`): with √Σ1 the PSD root of Σ1, Σ1 Σ2 = √Σ1 (√Σ1 Σ2) has the eigenvalues of the
symmetric PSD M = √Σ1 Σ2 √Σ1, so Tr (Σ1 Σ2)^{1/2} = Σ_i √λ_i(M), the 2-Wasserstein form. Unlike a
general matrix square root of the non-symmetric product (whose result for a singular product
differs between scipy releases), this needs no eps·I retry or complex arithmetic: the eigenvalues
are real and non-negative by construction, and singular covariances (fewer samples than
dimensions, dead features) are exact, including where the product is nilpotent and has no square
root at all. On well-conditioned inputs it agrees with pytorch-fid's ``calculate_frechet_distance``
to rounding.

FID proper uses Inception-v3 pool3 features (2048-d) of 50k samples; `StreamingStats` accumulates
their mean and covariance batch by batch, so the features never sit in memory at once.
"""
from typing import NamedTuple

import numpy as np

# Relative tolerance for "is a covariance": asymmetry and negative eigenvalues up to this times
# the matrix's scale are rounding (e.g. float32 statistics) and are symmetrised / clipped away.
_PSD_RTOL = 1e-6


def _psd_eigh(sigma: np.ndarray, name: str, vectors: bool = True):
  """Eigenvalues (clipped to >= 0, rounding-level ones zeroed) and, if `vectors`, eigenvectors.

  Raises `ValueError` if `sigma` is not symmetric PSD up to `_PSD_RTOL` relative to its scale.
  """
  scale = np.max(np.abs(sigma), initial=0.0)
  asym = np.max(np.abs(sigma - sigma.T), initial=0.0)
  if asym > _PSD_RTOL * scale:
    raise ValueError(f'{name} is not a covariance matrix: not symmetric '
                     f'(max |{name} - {name}ᵀ| = {asym:.3g}, max |{name}| = {scale:.3g})')
  sym = (sigma + sigma.T) / 2
  w, v = np.linalg.eigh(sym) if vectors else (np.linalg.eigvalsh(sym), None)
  top = np.max(np.abs(w), initial=0.0)
  if w.size and w[0] < -_PSD_RTOL * top:
    raise ValueError(f'{name} is not a covariance matrix: eigenvalue {w[0]:.3g} < 0 (max |λ| = '
                     f'{top:.3g}), which would give an imaginary component in the square root')
  w = _clip_rounding(w, top)
  return (w, v) if vectors else w


def _clip_rounding(w: np.ndarray, scale: float) -> np.ndarray:
  """Zeroes eigenvalues below the rounding level n·eps·scale (as np.linalg.matrix_rank).

  `scale` bounds the matrix's norm. Eigenvalues below that level carry no information (eigh is
  accurate to about eps·scale absolutely); keeping them would add √(rounding) ~ 1e-8·√scale per
  null direction to the trace of the root, where a singular covariance has exactly 0.
  """
  return np.where(w > w.size * np.finfo(np.float64).eps * scale, w, 0.0)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
  """Fréchet (2-Wasserstein) distance² between N(mu1, sigma1) and N(mu2, sigma2), in float64.

  Tr (Σ1 Σ2)^{1/2} = Σ √λ(√Σ1 Σ2 √Σ1), from `np.linalg.eigh` (see the module docstring); singular
  or rank-deficient covariances are handled exactly. Covariances that are not symmetric PSD
  (asymmetry or a negative eigenvalue beyond 1e-6 relative to their scale) raise `ValueError`;
  smaller deviations are rounding and are symmetrised / clipped. Non-finite inputs give NaN.

  Args:
    mu1, mu2: (D,) means.
    sigma1, sigma2: (D, D) covariances.
    eps: unused. Kept for call compatibility with pytorch-fid's ``calculate_frechet_distance``,
      where it is the eps·I offset retried for a singular product; the eigendecomposition needs
      no such offset.
  """
  del eps  # See the docstring: singular covariances need no regularisation here.
  mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
    raise ValueError(f'shapes do not match: mu {mu1.shape}, {mu2.shape}; '
                     f'sigma {sigma1.shape}, {sigma2.shape}')
  if not all(np.isfinite(x).all() for x in (mu1, mu2, sigma1, sigma2)):
    return float('nan')
  w1, v1 = _psd_eigh(sigma1, 'sigma1')
  w2 = _psd_eigh(sigma2, 'sigma2', vectors=False)
  root1 = (v1 * np.sqrt(w1)) @ v1.T  # √Σ1
  m = root1 @ sigma2 @ root1  # symmetric PSD, eigenvalues of Σ1 Σ2; norm at most ‖Σ1‖ ‖Σ2‖
  wm = np.linalg.eigvalsh((m + m.T) / 2)
  scale_m = np.max(w1, initial=0.0) * np.max(w2, initial=0.0)
  tr_covmean = np.sum(np.sqrt(_clip_rounding(wm, scale_m)))
  diff = mu1 - mu2
  return float(diff @ diff + np.sum(w1) + np.sum(w2) - 2 * tr_covmean)


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
