"""k-NN manifold metrics: improved precision/recall and density/coverage.

Both estimate each sample set's support as a union of balls B(x_i, NND_k(x_i)), with NND_k the
distance from x_i to its k-th nearest neighbour in its own set (the point itself not counted).

* Improved precision and recall, Kynkäänniemi et al. 2019 (arXiv:1904.06991), k = 3, inclusive
  balls (d <= radius): precision is the fraction of fakes inside the real support, recall the
  fraction of reals inside the fake support.
* Density and coverage, Naeem et al. 2020 (arXiv:2002.09797), k = 5, strict balls (d < radius)
  as the `prdc` package; only the real support is used (robust to fake outliers):
    density  = 1/(kM) Σ_j Σ_i 1[Y_j ∈ B(X_i, NND_k(X_i))]   (≈ 1 when fake ~ real, unbounded),
    coverage = 1/N Σ_i 1[∃ j: Y_j ∈ B(X_i, NND_k(X_i))],
  for N reals X and M fakes Y.

Squared distances are computed with jax.numpy, row chunk by row chunk under `jax.lax.map`
(one jit), so only a (chunk_size, N) block exists at a time, never an (N, M) or (N, M, D) one.
Comparisons are made on squared distances (the same order as distances).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np


def sq_distances(x: jax.Array, y: jax.Array) -> jax.Array:
  """‖x_i - y_j‖² as ‖x‖² + ‖y‖² - 2 x·y, in full matmul precision, clamped at 0: (N, M)."""
  dot = jnp.dot(x, y.T, precision=jax.lax.Precision.HIGHEST)
  return jnp.maximum(jnp.sum(x * x, 1)[:, None] + jnp.sum(y * y, 1)[None, :] - 2 * dot, 0.0)


def map_chunks(fn, x: jax.Array, chunk_size: int) -> jax.Array:
  """fn over row chunks of x (zero-padded to a multiple of chunk_size <= N), rows concatenated."""
  n = x.shape[0]
  chunk_size = min(chunk_size, n)
  xs = jnp.pad(x, ((0, -n % chunk_size), (0, 0))).reshape(-1, chunk_size, x.shape[1])
  out = jax.lax.map(fn, xs)
  return out.reshape((-1,) + out.shape[2:])[:n]


@functools.partial(jax.jit, static_argnames=('k', 'chunk_size'))
def kth_neighbour_sq_dist(x: jax.Array, k: int, chunk_size: int) -> jax.Array:
  """(N,) squared distance from each row of x to its k-th nearest other row of x."""
  return map_chunks(lambda c: -jax.lax.top_k(-sq_distances(c, x), k + 1)[0][:, k], x,
                    chunk_size)


@functools.partial(jax.jit, static_argnames=('strict', 'chunk_size'))
def _count_in_balls(query, centres, radii_sq, strict: bool, chunk_size: int) -> jax.Array:
  """(Q,) number of balls B(centres_i, radii_i) holding each query row."""
  inside = jnp.less if strict else jnp.less_equal
  return map_chunks(lambda c: jnp.sum(inside(sq_distances(c, centres), radii_sq), axis=1),
                    query, chunk_size)


@functools.partial(jax.jit, static_argnames=('chunk_size',))
def _min_sq_dist(query, ref, chunk_size: int) -> jax.Array:
  """(Q,) squared distance from each query row to its nearest row of ref."""
  return map_chunks(lambda c: jnp.min(sq_distances(c, ref), axis=1), query, chunk_size)


def _prepare(real, fake, k: int, k_sets: int) -> tuple:
  """Flattened float arrays; k-NN radii are needed in the first `k_sets` of (real, fake)."""
  real = jnp.asarray(real, jnp.result_type(float))
  fake = jnp.asarray(fake, jnp.result_type(float))
  real, fake = real.reshape(real.shape[0], -1), fake.reshape(fake.shape[0], -1)
  if real.shape[1] != fake.shape[1]:
    raise ValueError(f'feature sizes differ: {real.shape} vs {fake.shape}')
  n_min = min(x.shape[0] for x in (real, fake)[:k_sets])
  if not 1 <= k < n_min:
    raise ValueError(f'k must be in [1, {n_min - 1}], got {k}')
  return real, fake


def precision_recall(real, fake, k: int = 3, chunk_size: int = 1024) -> dict:
  """{'precision', 'recall'} of fake vs real samples (N, ...) and (M, ...), inclusive balls.

  Kynkäänniemi et al. 2019 (arXiv:1904.06991); the paper's reference uses k = 3 on 50k VGG-16
  fc2 features per set.
  """
  real, fake = _prepare(real, fake, k, k_sets=2)
  real_r = kth_neighbour_sq_dist(real, k, chunk_size)
  fake_r = kth_neighbour_sq_dist(fake, k, chunk_size)
  fake_in_real = np.asarray(_count_in_balls(fake, real, real_r, False, chunk_size))
  real_in_fake = np.asarray(_count_in_balls(real, fake, fake_r, False, chunk_size))
  return {'precision': float(np.mean(fake_in_real > 0)),
          'recall': float(np.mean(real_in_fake > 0))}


def density_coverage(real, fake, k: int = 5, chunk_size: int = 1024) -> dict:
  """{'density', 'coverage'} of fake vs real samples (N, ...) and (M, ...), strict balls.

  Naeem et al. 2020 (arXiv:2002.09797), as the `prdc` package (k = 5 in the paper).
  """
  real, fake = _prepare(real, fake, k, k_sets=1)
  real_r = kth_neighbour_sq_dist(real, k, chunk_size)
  fake_in_real = np.asarray(_count_in_balls(fake, real, real_r, True, chunk_size))
  covered = np.asarray(_min_sq_dist(real, fake, chunk_size) < real_r)
  return {'density': float(np.sum(fake_in_real, dtype=np.int64) / (k * fake.shape[0])),
          'coverage': float(np.mean(covered))}
