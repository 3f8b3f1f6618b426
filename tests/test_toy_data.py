"""The toy distributions (PacGAN's ring and grid, a 1-D mixture, the swiss roll) and mode metrics."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import toy_data
from gan_jax.metrics import mode_metrics


def test_ring_and_grid_follow_pacgan():
  ring = toy_data.get('ring')
  assert ring.centers.shape == (8, 2) and ring.std == 0.01
  np.testing.assert_allclose(np.linalg.norm(ring.centers, axis=1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(ring.centers[2], [0.0, 1.0], atol=1e-6)  # angle 2π·2/8
  grid = toy_data.get('grid')
  assert grid.centers.shape == (25, 2) and grid.std == 0.05
  assert sorted(set(grid.centers[:, 0].tolist())) == [-4, -2, 0, 2, 4]


@pytest.mark.parametrize('name', sorted(toy_data.DATASETS))
def test_sampling_in_jit(name):
  data = toy_data.get(name)
  x = jax.jit(data.sample, static_argnums=1)(jax.random.key(0), 1000)
  chex.assert_shape(x, (1000, data.dim))
  chex.assert_tree_all_finite(x)
  y = jax.jit(data.sample, static_argnums=1)(jax.random.key(1), 1000)
  assert not np.allclose(x, y)


@pytest.mark.parametrize('name', ['ring', 'grid', 'mixture_1d'])
def test_mixture_statistics(name):
  data = toy_data.get(name)
  x = np.asarray(data.sample(jax.random.key(0), 50_000))
  nearest = np.argmin(((x[:, None] - data.centers[None]) ** 2).sum(-1), axis=1)
  freq = np.bincount(nearest, minlength=len(data.centers)) / len(x)
  np.testing.assert_allclose(freq, 1 / len(data.centers), atol=0.01)  # equal weights
  resid = x - data.centers[nearest]
  np.testing.assert_allclose(resid.std(axis=0), data.std, rtol=0.03)


def test_swiss_roll_lies_on_its_curve():
  data = toy_data.swiss_roll(noise=0.0)
  x = np.asarray(data.sample(jax.random.key(0), 1000))
  r = np.linalg.norm(x, axis=1) / 0.1  # = t on the roll
  assert r.min() >= 1.5 * math.pi - 1e-3 and r.max() <= 4.5 * math.pi + 1e-3
  np.testing.assert_allclose(x[:, 0], 0.1 * r * np.cos(r), atol=1e-3)


def test_perfect_sampler_of_the_ring():
  ring = toy_data.get('ring')
  x = ring.sample(jax.random.key(0), 2500)
  m = mode_metrics(x, ring.centers, ring.std)
  assert m['modes'] == 8
  assert abs(m['hq_fraction'] - (1 - math.exp(-4.5))) < 0.006  # 98.9%: 2-D mass within 3σ
  assert m['reverse_kl'] < 0.01


def test_collapsed_sampler_scores_one_mode_and_log_k():
  ring = toy_data.get('ring')
  x = ring.centers[3] + ring.std * np.random.default_rng(0).normal(size=(2500, 2))
  m = mode_metrics(x, ring.centers, ring.std)
  assert m['modes'] == 1
  np.testing.assert_allclose(m['reverse_kl'], math.log(8), rtol=1e-6)


def test_mode_metrics_by_hand():
  centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
  # 3 HQ samples in mode 0, 1 in mode 1, one far sample (not HQ); mode 2 is empty.
  x = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, -0.2], [10.0, 0.2], [5.0, 5.0]])
  m = mode_metrics(x, centers, std=0.1)
  assert m['modes'] == 2
  np.testing.assert_allclose(m['hq_fraction'], 4 / 5)  # distances 0, 1, 2, 2 and ~70σ
  p = np.array([3 / 4, 1 / 4])
  np.testing.assert_allclose(m['reverse_kl'], np.sum(p * np.log(p * 3)), rtol=1e-5)


def test_mode_metrics_without_hq_samples():
  ring = toy_data.get('ring')
  m = mode_metrics(jnp.zeros((10, 2)), ring.centers, ring.std)
  assert m == {'modes': 0, 'hq_fraction': 0.0, 'reverse_kl': pytest.approx(math.log(8))}


def test_unknown_dataset_is_named():
  with pytest.raises(ValueError, match='valid datasets: grid, mixture_1d, ring, swiss_roll'):
    toy_data.get('rings')
