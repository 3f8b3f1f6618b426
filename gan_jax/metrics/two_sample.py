"""Two-sample tests of generated vs real samples: kernel MMD and a classifier two-sample test.

* `mmd2`: Gretton et al. 2012, "A Kernel Two-Sample Test" (JMLR 13), the unbiased MMD²_u with
  a Gaussian kernel k(x, y) = exp(-‖x - y‖² / 2σ²), σ by the median heuristic (the median
  distance between points of the pooled sample, their section 8), p-value by permutations.
* `c2st`: Lopez-Paz & Oquab 2017, "Revisiting Classifier Two-Sample Tests" (arXiv:1610.06545):
  train a classifier to tell the samples apart on half the pooled data; under H0 (same
  distribution) its accuracy on the other half is Binomial(n_test, 1/2) / n_test.

Both hold an (N+M)² matrix, so they are meant for up to a few thousand samples (toy data, or
features), where the k-NN metrics of `precision_recall` are for 10k-50k.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.spatial.distance
import scipy.stats

from gan_jax.metrics.precision_recall import map_chunks, sq_distances


def _as_2d(x) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x.reshape(x.shape[0], -1)


def mmd2(x, y, bandwidth=None, num_permutations: int = 200, seed: int = 0) -> dict:
  """{'mmd2', 'p_value', 'bandwidth'} for samples x (N, ...) and y (M, ...), in float64.

  MMD²_u = Σ_{i≠j} k(x_i, x_j) / N(N-1) + Σ_{i≠j} k(y_i, y_j) / M(M-1) - 2 Σ_{i,j} k(x_i, y_j) / NM
  (Gretton et al. 2012, eq. 3). The p-value is (1 + #{permuted MMD²_u >= observed}) / (1 + P)
  over P random relabellings of the pooled sample (the +1 counts the observed labelling, so the
  test is exact and p > 0).
  """
  x, y = _as_2d(x), _as_2d(y)
  n, m = x.shape[0], y.shape[0]
  if n < 2 or m < 2 or x.shape[1] != y.shape[1]:
    raise ValueError(f'expected (N>=2, D) and (M>=2, D) samples, got {x.shape}, {y.shape}')
  pooled = np.concatenate([x, y])
  sq = scipy.spatial.distance.cdist(pooled, pooled, 'sqeuclidean')
  if bandwidth is None:
    bandwidth = float(np.sqrt(np.median(sq[np.triu_indices(n + m, 1)])))
  if not bandwidth > 0:
    raise ValueError(f'bandwidth must be > 0, got {bandwidth}')
  kernel = np.exp(-sq / (2 * bandwidth ** 2))
  np.fill_diagonal(kernel, 0.0)  # the i ≠ j of the unbiased estimator
  # Row 0 is the observed labelling, rows 1.. random relabellings: u marks x, v = 1 - u marks y.
  rng = np.random.default_rng(seed)
  u = np.zeros((num_permutations + 1, n + m))
  u[0, :n] = 1.0
  for row in u[1:]:
    row[rng.permutation(n + m)[:n]] = 1.0
  v = 1.0 - u
  ku = u @ kernel
  stats = ((ku * u).sum(1) / (n * (n - 1)) + ((v @ kernel) * v).sum(1) / (m * (m - 1))
           - 2 * (ku * v).sum(1) / (n * m))
  p_value = (1 + np.sum(stats[1:] >= stats[0])) / (1 + num_permutations)
  return {'mmd2': float(stats[0]), 'p_value': float(p_value), 'bandwidth': bandwidth}


@functools.partial(jax.jit, static_argnames=('k', 'chunk_size'))
def _knn_vote(train, labels, test, k: int, chunk_size: int) -> jax.Array:
  def vote(chunk):
    _, idx = jax.lax.top_k(-sq_distances(chunk, train), k)
    return jnp.mean(labels[idx], axis=1) > 0.5
  return map_chunks(vote, test, chunk_size)


def knn_classifier(train, labels, test, k=None, chunk_size: int = 1024) -> np.ndarray:
  """Majority vote of the k nearest training points (Euclidean), labels in {0, 1}.

  k defaults to ⌊√n_train⌋ made odd (no tied votes): with k → ∞ and k/n → 0 the k-NN rule is
  consistent, so its accuracy tends to the Bayes accuracy, which exceeds 1/2 iff P ≠ Q.
  """
  train = jnp.asarray(train, jnp.result_type(float))
  test = jnp.asarray(test, jnp.result_type(float))
  if k is None:
    k = max(1, int(np.sqrt(train.shape[0])))
    k -= 1 - k % 2
  return np.asarray(_knn_vote(train, jnp.asarray(labels, jnp.float32), test, k, chunk_size))


def c2st(x, y, seed: int = 0, classifier=knn_classifier) -> dict:
  """{'accuracy', 'p_value'} of a classifier two-sample test of x (N, ...) vs y (M, ...).

  Half of each sample (shuffled by `seed`) trains `classifier(train, labels, test) -> predicted
  labels` (x is 1, y is 0); the other half tests it. p_value = P(Binomial(n_test, 1/2) >= correct),
  one-sided: only above-chance accuracy is evidence against H0. The default is a k-NN (one of
  the paper's two classifiers): nonparametric, so it sees any difference (e.g. dropped modes
  with the same mean, which a linear classifier misses), deterministic, no training loop. Any
  scikit-learn estimator plugs in as
  `lambda a, b, c: LogisticRegression().fit(a, b).predict(c)`.
  """
  x, y = _as_2d(x), _as_2d(y)
  if x.shape[0] < 2 or y.shape[0] < 2 or x.shape[1] != y.shape[1]:
    raise ValueError(f'expected (N>=2, D) and (M>=2, D) samples, got {x.shape}, {y.shape}')
  rng = np.random.default_rng(seed)
  x, y = x[rng.permutation(x.shape[0])], y[rng.permutation(y.shape[0])]
  hx, hy = x.shape[0] // 2, y.shape[0] // 2
  train = np.concatenate([x[:hx], y[:hy]])
  train_labels = np.concatenate([np.ones(hx), np.zeros(hy)])
  test = np.concatenate([x[hx:], y[hy:]])
  test_labels = np.concatenate([np.ones(x.shape[0] - hx), np.zeros(y.shape[0] - hy)])
  predicted = np.asarray(classifier(train, train_labels, test)).reshape(-1)
  correct = int(np.sum(predicted.astype(np.float64) == test_labels))
  n_test = test_labels.shape[0]
  return {'accuracy': correct / n_test,
          'p_value': float(scipy.stats.binom.sf(correct - 1, n_test, 0.5))}
