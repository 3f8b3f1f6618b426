"""FID∞ and IS∞: the scores extrapolated to infinitely many samples.

Chong & Forsyth 2020, "Effectively Unbiased FID and Inception Score and where to find them"
(CVPR 2020, arXiv:1911.07023). FID and IS computed from N samples are biased, and the bias
depends on the generator, so FIDs of two models at one N can rank them differently than at
another. The bias is, to first order, linear in 1/N: FID_N ≈ FID∞ + k/N. So: compute the score
on `num_points` sample counts N evenly spaced from `min_n` to all M samples (each a random
subset, drawn anew for every N from `RandomState(seed)` as the reference draws a fresh
shuffle), fit the line score = a + b/N by least squares, and report the intercept a.

The reference uses M = 50,000 generated samples and N from 5,000 in 15 points; here `min_n`
defaults to min(5000, M // 2), so smaller evaluations still span a factor of 2 in N. IS∞ fits
the IS of the whole subset (one split: the score of N samples, whose bias is the one linear in
1/N); FID∞ keeps the real statistics fixed, as the reference does.
"""
from typing import Optional

import numpy as np

from gan_jax.metrics.fid import StreamingStats, frechet_distance
from gan_jax.metrics.inception_score import inception_score

NUM_POINTS = 15


def sample_counts(m: int, min_n: Optional[int] = None, num_points: int = NUM_POINTS) -> np.ndarray:
  """The N of the fit: `num_points` counts from min_n (default min(5000, m // 2)) to m."""
  min_n = min(5000, m // 2) if min_n is None else min_n
  if not 2 <= min_n < m:
    raise ValueError(f'need 2 <= min_n < the {m} samples to extrapolate over; got min_n={min_n}')
  return np.unique(np.linspace(min_n, m, num_points).astype(np.int64))


def extrapolate(counts, scores) -> float:
  """The intercept a of the least-squares line score = a + b / N (the score at N → ∞)."""
  counts, scores = np.asarray(counts, np.float64), np.asarray(scores, np.float64)
  design = np.stack([np.ones_like(counts), 1 / counts], axis=1)
  (intercept, _), *_ = np.linalg.lstsq(design, scores, rcond=None)
  return float(intercept)


def fid_infinity(fake_features, mu_real, sigma_real, min_n: Optional[int] = None,
                 num_points: int = NUM_POINTS, seed: int = 0) -> dict:
  """{'fid_infinity', 'fid_n' (the FIDs of the fit), 'n' (their counts)} of (M, D) fake features
  against the real (mu, sigma)."""
  feats = np.asarray(fake_features, np.float64)
  counts = sample_counts(feats.shape[0], min_n, num_points)
  rng = np.random.RandomState(seed)
  fids = []
  for n in counts:
    subset = feats[rng.permutation(feats.shape[0])[:n]]
    mu, sigma = StreamingStats.init(feats.shape[1]).update(subset).finalize()
    fids.append(frechet_distance(mu_real, sigma_real, mu, sigma))
  return {'fid_infinity': extrapolate(counts, fids), 'fid_n': fids, 'n': counts.tolist()}


def is_infinity(probs, min_n: Optional[int] = None, num_points: int = NUM_POINTS,
                seed: int = 0) -> dict:
  """{'is_infinity', 'is_n', 'n'} of (M, C) class probabilities (one split per count)."""
  probs = np.asarray(probs, np.float64)
  counts = sample_counts(probs.shape[0], min_n, num_points)
  rng = np.random.RandomState(seed)
  scores = [inception_score(probs[rng.permutation(probs.shape[0])[:n]], 1)[0] for n in counts]
  return {'is_infinity': extrapolate(counts, scores), 'is_n': scores, 'n': counts.tolist()}
