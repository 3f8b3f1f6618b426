"""Feature-space metrics and two-sample tests: closed forms, direct NumPy references, edge cases."""
import itertools
import math

import numpy as np
import pytest
import scipy.spatial.distance

from gan_jax import metrics
from gan_jax.metrics import fid


# ---------------------------------------------------------------------------------------- FID

def test_frechet_identity_covariances_2048():
  # N(0, I) vs N(1, I) in 2048-d: ‖Δμ‖² = 2048, the covariance term vanishes.
  eye = np.eye(2048)
  d = metrics.frechet_distance(np.zeros(2048), eye, np.ones(2048), eye)
  assert isinstance(d, float)
  np.testing.assert_allclose(d, 2048.0, rtol=1e-10)


def test_frechet_isotropic_and_diagonal():
  rng = np.random.default_rng(0)
  dim, s1, s2 = 16, 0.5, 2.0
  mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
  expected = dim * (s1 - s2) ** 2 + np.sum((mu1 - mu2) ** 2)
  got = metrics.frechet_distance(mu1, s1 ** 2 * np.eye(dim), mu2, s2 ** 2 * np.eye(dim))
  np.testing.assert_allclose(got, expected, rtol=1e-10)
  a, b = rng.uniform(0.1, 3.0, dim), rng.uniform(0.1, 3.0, dim)
  expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2)
  np.testing.assert_allclose(metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)),
                             expected, rtol=1e-10)


def _tr_sqrt_product(s1, s2):
  """Tr (S1 S2)^{1/2} by the symmetric form Tr (S1^{1/2} S2 S1^{1/2})^{1/2}, with eigh only."""
  w, v = np.linalg.eigh(s1)
  root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  return np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ s2 @ root1), 0, None)))


def test_frechet_non_commuting_2x2():
  s1, s2 = np.array([[2.0, 1.0], [1.0, 1.0]]), np.array([[1.0, -0.5], [-0.5, 3.0]])
  assert not np.allclose(s1 @ s2, s2 @ s1)
  mu1, mu2 = np.array([0.0, 1.0]), np.array([2.0, -1.0])
  # 2x2 with eigenvalues λ1, λ2 >= 0: Tr √M = √λ1 + √λ2 = sqrt(tr M + 2 sqrt(det M)).
  m = s1 @ s2
  tr_sqrt = np.sqrt(np.trace(m) + 2 * np.sqrt(np.linalg.det(m)))
  np.testing.assert_allclose(tr_sqrt, _tr_sqrt_product(s1, s2), rtol=1e-12)
  expected = 8.0 + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
  np.testing.assert_allclose(metrics.frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-10)


def test_frechet_random_features_against_reference():
  rng = np.random.default_rng(1)
  a = rng.normal(size=(400, 64)) @ rng.normal(size=(64, 64)) * 0.3
  b = rng.standard_t(5, size=(300, 64)) + 0.2
  mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
  expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * _tr_sqrt_product(s1, s2)
  got = metrics.frechet_distance(mu1.astype(np.float32), s1.astype(np.float32), mu2, s2)
  np.testing.assert_allclose(got, expected, rtol=1e-6)  # float32 inputs, float64 inside
  np.testing.assert_allclose(metrics.frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-9)
  assert metrics.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_agrees_with_product_eigenvalues():
  # pytorch-fid's Tr sqrtm(S1 S2) is Σ √λ over the eigenvalues of the non-symmetric product
  # (the principal root); here they come from np.linalg.eigvals, a route independent of eigh.
  rng = np.random.default_rng(6)
  a = rng.normal(size=(200, 32)) @ rng.normal(size=(32, 32))
  b = rng.normal(size=(150, 32)) * rng.uniform(0.2, 3.0, 32) + 0.5
  mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
  lam = np.linalg.eigvals(s1 @ s2)
  assert np.max(np.abs(lam.imag)) < 1e-10 * np.max(np.abs(lam)) and np.min(lam.real) > 0
  expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(lam.real))
  np.testing.assert_allclose(metrics.frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-10)


def test_frechet_rank_one_covariances_closed_form():
  # Two samples per set: rank-1 covariances S1 = ½uuᵀ, S2 = ½vvᵀ. S1 S2 = ¼(u·v) u vᵀ has the
  # one nonzero eigenvalue ¼(u·v)², so exactly Tr √(S1 S2) = |u·v| / 2.
  a = np.array([[2.0, 1.0, -1.0, -1.0], [1.0, 0.0, 1.0, -2.0]])
  b = np.array([[2.0, 2.0, -1.0, 0.0], [-1.0, 0.0, 1.0, 0.0]])
  s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  u, v = a[0] - a[1], b[0] - b[1]
  np.testing.assert_allclose(s1, 0.5 * np.outer(u, u), rtol=1e-15)
  assert u @ v == 9.0
  mu1, mu2 = a.mean(0), b.mean(0)
  expected = np.sum((mu1 - mu2) ** 2) + 0.5 * u @ u + 0.5 * v @ v - abs(u @ v)
  np.testing.assert_allclose(metrics.frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-12)
  # Random rank-1 pairs in 16-d, the last with u ⟂ v: S1 S2 is then nilpotent, Tr √ = 0.
  rng = np.random.default_rng(4)
  for orthogonal in [False, False, True]:
    u, v, mu1, mu2 = rng.normal(size=(4, 16))
    if orthogonal:
      v -= (u @ v) / (u @ u) * u
    s1, s2 = 0.5 * np.outer(u, u), 0.5 * np.outer(v, v)
    expected = np.sum((mu1 - mu2) ** 2) + 0.5 * u @ u + 0.5 * v @ v - abs(u @ v)
    np.testing.assert_allclose(metrics.frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-10)
    assert metrics.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-12 * (u @ u))


def test_frechet_near_singular_commuting_closed_form():
  # Commuting covariances Q diag(a) Qᵀ, Q diag(b) Qᵀ with zero and 1e-12 eigenvalues:
  # d² = ‖Δμ‖² + Σ (√a - √b)². The 1e-12 entries matter at 2e-6: (1 - 1e-6)² vs 1.
  a = np.array([2.0, 1e-12, 0.0, 0.5, 0.0, 3.0, 1e-12, 1.0])
  b = np.array([1e-12, 1.0, 0.0, 0.0, 2.0, 3.0, 1e-12, 1e-12])
  rng = np.random.default_rng(5)
  mu1, mu2 = rng.normal(size=(2, 8))
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  got = metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
  np.testing.assert_allclose(got, expected, rtol=1e-13)
  q = np.linalg.qr(rng.normal(size=(8, 8)))[0]  # rotated: not diagonal, an elementwise √ fails
  s1, s2 = (q * a) @ q.T, (q * b) @ q.T
  np.testing.assert_allclose(metrics.frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-9)
  assert metrics.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-10)


def test_frechet_fewer_samples_than_dimensions():
  # 5 and 7 samples in 20-d: covariances of rank 4 and 6. With centred samples A (5×20) and B,
  # S1 = AᵀA/4, S2 = BᵀB/6, and the nonzero eigenvalues of S1 S2 are those of (ABᵀ)(BAᵀ)/24, so
  # Tr √(S1 S2) = Σ σ(ABᵀ) / √24: a 5×7 SVD, independent of the 20×20 route.
  rng = np.random.default_rng(7)
  x = rng.normal(size=(5, 20)) * rng.uniform(0.5, 2.0, 20)
  y = rng.normal(size=(7, 20)) @ rng.normal(size=(20, 20)) * 0.3 + 0.2
  a, b = x - x.mean(0), y - y.mean(0)
  s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
  assert np.linalg.matrix_rank(s1) == 4 and np.linalg.matrix_rank(s2) == 6
  tr_sqrt = np.sum(np.linalg.svd(a @ b.T, compute_uv=False)) / np.sqrt(4 * 6)
  expected = (np.sum((x.mean(0) - y.mean(0)) ** 2) + np.sum(a ** 2) / 4 + np.sum(b ** 2) / 6
              - 2 * tr_sqrt)
  np.testing.assert_allclose(metrics.frechet_distance(x.mean(0), s1, y.mean(0), s2), expected,
                             rtol=1e-10)
  np.testing.assert_allclose(metrics.frechet_distance(y.mean(0), s2, x.mean(0), s1), expected,
                             rtol=1e-10)  # symmetric in its arguments
  scale = np.trace(s1)
  assert metrics.frechet_distance(x.mean(0), s1, x.mean(0), s1) == pytest.approx(0.0,
                                                                                 abs=1e-12 * scale)


def test_frechet_rejects_non_covariances():
  zero, eye = np.zeros(3), np.eye(3)
  asymmetric = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
  with pytest.raises(ValueError, match='sigma1 is not a covariance matrix: not symmetric'):
    metrics.frechet_distance(zero, asymmetric, zero, eye)
  indefinite = np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # eigenvalue -1
  with pytest.raises(ValueError, match='sigma2 is not a covariance matrix: eigenvalue -1 < 0'):
    metrics.frechet_distance(zero, eye, zero, indefinite)
  # Rounding-level deviations (1e-12 relative) are symmetrised and clipped, not rejected.
  exact = np.diag([2.0, 1.0, 0.0])
  noisy = exact + np.array([[0.0, 1e-12, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, -1e-12]])
  np.testing.assert_allclose(metrics.frechet_distance(zero, noisy, zero, eye),
                             metrics.frechet_distance(zero, exact, zero, eye), rtol=1e-11)
  assert math.isnan(metrics.frechet_distance(zero, np.diag([1.0, np.nan, 1.0]), zero, eye))


def test_frechet_rejects_complex_root_and_bad_shapes():
  # A "covariance" with a negative eigenvalue has an imaginary square root: ValueError.
  with pytest.raises(ValueError, match='imaginary component'):
    metrics.frechet_distance(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))
  with pytest.raises(ValueError):
    metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_streaming_stats_equal_one_shot():
  rng = np.random.default_rng(2)
  feats = rng.normal(size=(400, 32)) * rng.uniform(0.1, 5, 32) + 100.0  # large mean offset
  stats = fid.StreamingStats.init(32)
  start = 0
  for size in [1, 7, 0, 128, 3, 61, 200]:
    stats = stats.update(feats[start:start + size])
    start += size
  assert start == feats.shape[0] and stats.count == feats.shape[0]
  mu, sigma = stats.finalize()
  np.testing.assert_allclose(mu, np.mean(feats, axis=0), rtol=1e-12)
  np.testing.assert_allclose(sigma, np.cov(feats, rowvar=False), rtol=1e-10, atol=1e-10)
  with pytest.raises(ValueError):
    fid.StreamingStats.init(32).update(feats[:1]).finalize()


# ---------------------------------------------------------------------------------------- KID

def _mmd2_unbiased_loops(x, y, kernel):
  m = len(x)
  xx = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
  yy = sum(kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
  xy = sum(kernel(x[i], y[j]) for i in range(m) for j in range(m))
  return (xx + yy) / (m * (m - 1)) - 2 * xy / m ** 2


def test_kid_against_direct_numpy():
  rng = np.random.default_rng(3)
  a, b = rng.normal(size=(25, 6)), rng.normal(size=(25, 6)) + 0.3
  cubic = lambda p, q: (p @ q / 6 + 1) ** 3
  # One subset of all samples: a permutation of each set, which MMD²_u does not see.
  mean, std = metrics.kernel_inception_distance(a, b, num_subsets=1, subset_size=1000)
  np.testing.assert_allclose(mean, _mmd2_unbiased_loops(a, b, cubic), rtol=1e-10)
  assert std == 0.0
  # Several subsets: torch-fidelity's draws (a then b, without replacement) from RandomState.
  rs, mmds = np.random.RandomState(7), []
  for _ in range(5):
    x, y = a[rs.choice(25, 10, replace=False)], b[rs.choice(25, 10, replace=False)]
    mmds.append(_mmd2_unbiased_loops(x, y, lambda p, q: (0.5 * p @ q + 2) ** 2))
  for gram_limit in (0, 1000):  # subsets recomputed, or read from the precomputed Gram matrices
    got = metrics.kernel_inception_distance(a, b, num_subsets=5, subset_size=10, degree=2,
                                            gamma=0.5, coef0=2, seed=7, gram_limit=gram_limit)
    np.testing.assert_allclose(got, (np.mean(mmds), np.std(mmds)), rtol=1e-10)


def test_kid_same_vs_shifted():
  rng = np.random.default_rng(4)
  a, b = rng.normal(size=(500, 16)), rng.normal(size=(500, 16))
  same_mean, same_std = metrics.kernel_inception_distance(a, b, num_subsets=20, subset_size=200)
  assert abs(same_mean) < same_std
  shift_mean, shift_std = metrics.kernel_inception_distance(a, b + 0.5, num_subsets=20,
                                                            subset_size=200)
  assert shift_mean > 10 * shift_std and shift_mean > 100 * abs(same_mean)


# ----------------------------------------------------------------------------------------- IS

def test_inception_score_extremes():
  mean, std = metrics.inception_score(np.full((100, 10), 0.1), splits=10)
  np.testing.assert_allclose([mean, std], [1.0, 0.0], atol=1e-12)
  one_hot = np.eye(10)[np.arange(1000) % 10]  # every split of 100 holds each class 10 times
  mean, std = metrics.inception_score(one_hot, splits=10)
  np.testing.assert_allclose([mean, std], [10.0, 0.0], atol=1e-12)


@pytest.mark.parametrize('n', [1000, 1003])
def test_inception_score_against_direct_numpy(n):
  probs = np.random.default_rng(5).dirichlet(np.full(20, 0.5), size=n)
  scores = []
  for i in range(10):  # the reference: i*N//splits boundaries, exp(mean KL), ddof=0 std
    part = probs[i * n // 10:(i + 1) * n // 10]
    kl = np.sum(part * (np.log(part) - np.log(part.mean(0, keepdims=True))), axis=1)
    scores.append(np.exp(kl.mean()))
  got = metrics.inception_score(probs.astype(np.float32), splits=10)
  np.testing.assert_allclose(got, (np.mean(scores), np.std(scores)), rtol=1e-5)
  np.testing.assert_allclose(metrics.inception_score(probs), (np.mean(scores), np.std(scores)),
                             rtol=1e-10)


# -------------------------------------------------------------------------- precision / recall

def _prdc_brute_force(real, fake, k_pr, k_dc):
  """Kynkäänniemi et al. (<=) and prdc (<), from full float64 distance matrices."""
  d_rr = scipy.spatial.distance.cdist(real, real)
  d_ff = scipy.spatial.distance.cdist(fake, fake)
  d_rf = scipy.spatial.distance.cdist(real, fake)  # (N, M)
  r_real = lambda k: np.sort(d_rr, axis=1)[:, k]     # index 0 is the point itself
  r_fake = np.sort(d_ff, axis=1)[:, k_pr]
  return {
      'precision': np.mean([any(d_rf[i, j] <= r_real(k_pr)[i] for i in range(len(real)))
                            for j in range(len(fake))]),
      'recall': np.mean([any(d_rf[i, j] <= r_fake[j] for j in range(len(fake)))
                         for i in range(len(real))]),
      'density': np.sum(d_rf < r_real(k_dc)[:, None]) / (k_dc * len(fake)),
      'coverage': np.mean([any(d_rf[i, j] < r_real(k_dc)[i] for j in range(len(fake)))
                           for i in range(len(real))]),
  }


def _prdc(real, fake, chunk_size=1024):
  return {**metrics.precision_recall(real, fake, k=3, chunk_size=chunk_size),
          **metrics.density_coverage(real, fake, k=5, chunk_size=chunk_size)}


def test_prdc_against_brute_force_with_ties():
  # Points on an integer grid: many equal distances, all exact in float32, so <= vs < matters.
  rng = np.random.default_rng(6)
  real = rng.integers(0, 5, size=(60, 3)).astype(np.float32)
  fake = rng.integers(1, 6, size=(50, 3)).astype(np.float32)
  got, expected = _prdc(real, fake, chunk_size=16), _prdc_brute_force(real, fake, 3, 5)
  assert got == pytest.approx(expected, abs=1e-12)
  # With inclusive balls, 60 reals on 125 grid points cover more than strict ones would.
  strict_precision = np.mean((scipy.spatial.distance.cdist(real, fake) <
                              np.sort(scipy.spatial.distance.cdist(real, real), 1)[:, 3:4])
                             .any(axis=0))
  assert got['precision'] > strict_precision


def test_prdc_against_brute_force_gaussian():
  rng = np.random.default_rng(7)
  real, fake = rng.normal(size=(120, 8)), rng.normal(size=(90, 8)) * 1.3 + 0.4
  got, expected = _prdc(real, fake), _prdc_brute_force(real, fake, 3, 5)
  assert got == pytest.approx(expected, abs=1e-12)
  assert 0 < got['precision'] < 1 and 0 < got['recall'] < 1 and 0 < got['coverage'] < 1


def test_prdc_hand_case_inclusive_vs_strict():
  # 1-D, k = 1: every radius is 1. Fake 3 sits exactly on the ball of real 2 (d = 1).
  real, fake = np.array([[0.0], [1.0], [2.0]]), np.array([[3.0], [4.0]])
  pr = metrics.precision_recall(real, fake, k=1)
  assert pr == {'precision': 0.5, 'recall': pytest.approx(1 / 3)}   # inclusive: 3 in, 2 in
  assert metrics.density_coverage(real, fake, k=1) == {'density': 0.0, 'coverage': 0.0}


def test_prdc_identical_and_disjoint_sets():
  rng = np.random.default_rng(8)
  real = rng.normal(size=(100, 4))
  same = _prdc(real, real)
  assert same['precision'] == same['recall'] == same['coverage'] == 1.0
  assert same['density'] > 0.5
  far = _prdc(real, rng.normal(size=(80, 4)) + 100.0)
  assert far == {'precision': 0.0, 'recall': 0.0, 'density': 0.0, 'coverage': 0.0}


def test_prdc_chunked_equals_unchunked():
  rng = np.random.default_rng(9)
  real, fake = rng.normal(size=(103, 5)), rng.normal(size=(77, 5)) + 0.3
  assert _prdc(real, fake, chunk_size=7) == _prdc(real, fake, chunk_size=100_000)
  with pytest.raises(ValueError):
    metrics.precision_recall(real[:3], fake, k=3)


# ------------------------------------------------------------------------------- two-sample

def test_mmd2_against_direct_numpy():
  rng = np.random.default_rng(10)
  x, y = rng.normal(size=(30, 3)), rng.normal(size=(40, 3)) + 0.2
  gauss = lambda p, q: np.exp(-np.sum((p - q) ** 2) / (2 * 1.5 ** 2))
  xx = sum(gauss(x[i], x[j]) for i, j in itertools.permutations(range(30), 2))
  yy = sum(gauss(y[i], y[j]) for i, j in itertools.permutations(range(40), 2))
  xy = sum(gauss(p, q) for p in x for q in y)
  expected = xx / (30 * 29) + yy / (40 * 39) - 2 * xy / (30 * 40)
  out = metrics.mmd2(x, y, bandwidth=1.5, num_permutations=50)
  np.testing.assert_allclose(out['mmd2'], expected, rtol=1e-10)
  assert out['p_value'] * 51 == pytest.approx(round(out['p_value'] * 51))  # (1 + count) / 51
  median = np.median(scipy.spatial.distance.pdist(np.concatenate([x, y])))
  np.testing.assert_allclose(metrics.mmd2(x, y, num_permutations=10)['bandwidth'], median)


def test_mmd2_same_vs_shifted():
  rng = np.random.default_rng(11)
  x, y = rng.normal(size=(200, 2)), rng.normal(size=(200, 2))
  same = metrics.mmd2(x, y)
  assert abs(same['mmd2']) < 0.01 and same['p_value'] > 0.05
  shifted = metrics.mmd2(x, y + 1.0)
  assert shifted['mmd2'] > 0.1 and shifted['p_value'] < 0.01


def test_c2st_same_vs_disjoint():
  rng = np.random.default_rng(12)
  x, y = rng.normal(size=(400, 2)), rng.normal(size=(400, 2))
  same = metrics.c2st(x, y)
  assert abs(same['accuracy'] - 0.5) < 0.07 and same['p_value'] > 0.05
  far = metrics.c2st(x, y + 10.0)
  assert far['accuracy'] > 0.9 and far['p_value'] < 1e-3


def test_c2st_sees_dropped_modes_with_the_same_mean():
  # 8-mode ring vs its 4 even modes: equal means (a linear classifier is at chance), yet k-NN
  # tells them apart.
  rng = np.random.default_rng(13)
  angles = lambda modes, n: 2 * np.pi * rng.choice(modes, n) / 8
  ring = lambda a: np.stack([np.cos(a), np.sin(a)], 1) + 0.05 * rng.normal(size=(len(a), 2))
  out = metrics.c2st(ring(angles(np.arange(8), 400)), ring(angles(np.arange(0, 8, 2), 400)))
  assert out['accuracy'] > 0.7 and out['p_value'] < 1e-3


def test_c2st_p_value_is_the_binomial_tail():
  # A pluggable classifier that always says "x": 10 correct of 25 test points.
  rng = np.random.default_rng(15)
  x, y = rng.normal(size=(20, 2)), rng.normal(size=(30, 2))
  out = metrics.c2st(x, y, classifier=lambda train, labels, test: np.ones(len(test)))
  assert out['accuracy'] == 10 / 25
  np.testing.assert_allclose(out['p_value'], sum(math.comb(25, i) for i in range(10, 26)) / 2 ** 25,
                             rtol=1e-12)
  perfect = metrics.c2st(x, y + 100.0)  # every test point right: p = 2^-25
  assert perfect['accuracy'] == 1.0
  np.testing.assert_allclose(perfect['p_value'], 0.5 ** 25, rtol=1e-12)


def test_knn_classifier_against_brute_force():
  rng = np.random.default_rng(14)
  train, test = rng.normal(size=(64, 3)), rng.normal(size=(40, 3))
  labels = (train[:, 0] + 0.5 * rng.normal(size=64) > 0).astype(np.float64)
  # Default k: ⌊√64⌋ = 8, made odd: 7.
  nearest = np.argsort(scipy.spatial.distance.cdist(test, train), axis=1)[:, :7]
  expected = labels[nearest].mean(axis=1) > 0.5
  np.testing.assert_array_equal(metrics.knn_classifier(train, labels, test, chunk_size=6),
                                expected)


# --- FID∞ and IS∞ (Chong & Forsyth 2020) ---------------------------------------------------------


def test_extrapolate_recovers_a_line_in_one_over_n():
  from gan_jax.metrics import infinity
  counts = np.array([100, 250, 400, 1000])
  assert infinity.extrapolate(counts, 3.5 + 40 / counts) == pytest.approx(3.5, rel=1e-12)
  np.testing.assert_array_equal(infinity.sample_counts(1000), np.linspace(500, 1000, 15).astype(int))
  assert infinity.sample_counts(20_000, num_points=3).tolist() == [5000, 12500, 20000]
  with pytest.raises(ValueError, match='need 2 <= min_n < the 3 samples'):
    infinity.sample_counts(3)


def test_fid_and_is_infinity_equal_a_direct_computation():
  from gan_jax.metrics import infinity
  rng = np.random.default_rng(0)
  feats = rng.normal(size=(300, 5)) + 0.2
  real = rng.normal(size=(400, 5))
  mu, sigma = real.mean(0), np.cov(real, rowvar=False)
  out = infinity.fid_infinity(feats, mu, sigma, min_n=100, num_points=5, seed=3)
  draws, fids = np.random.RandomState(3), []
  for n in (100, 150, 200, 250, 300):
    sub = feats[draws.permutation(300)[:n]]
    fids.append(metrics.frechet_distance(mu, sigma, sub.mean(0), np.cov(sub, rowvar=False)))
  np.testing.assert_allclose(out['fid_n'], fids, rtol=1e-10)
  _, intercept = np.polyfit(1 / np.array(out['n']), fids, 1)
  assert out['fid_infinity'] == pytest.approx(intercept, rel=1e-9)
  probs = rng.dirichlet(np.ones(6) * 0.3, size=300)
  got = infinity.is_infinity(probs, min_n=100, num_points=5, seed=3)
  draws = np.random.RandomState(3)
  scores = [metrics.inception_score(probs[draws.permutation(300)[:n]], 1)[0] for n in got['n']]
  np.testing.assert_allclose(got['is_n'], scores, rtol=1e-12)
  assert got['is_infinity'] == pytest.approx(np.polyfit(1 / np.array(got['n']), scores, 1)[1],
                                             rel=1e-9)


def test_fid_infinity_removes_the_finite_sample_bias():
  """Fakes from the reference distribution itself (the exact N(0, I)): FID_N is all bias, of
  order d²/N, and FID∞ extrapolates it away (the true distance is 0)."""
  from gan_jax.metrics import infinity
  d = 16
  feats = np.random.default_rng(1).normal(size=(4000, d))
  out = infinity.fid_infinity(feats, np.zeros(d), np.eye(d), seed=0)
  assert out['fid_n'][-1] > 0.02  # the bias at N = 4000
  assert abs(out['fid_infinity']) < 0.2 * out['fid_n'][-1]
