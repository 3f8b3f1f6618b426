"""Low-dimensional toy distributions, sampled inside jit from a key (no host loop).

The ring and the grid follow PacGAN's protocol (Lin et al. 2018, arXiv:1712.04086), so mode
counts compare with its Table 1: ring = 8 Gaussians on the unit circle at angles 2πi/8 with
std 0.01; grid = 25 Gaussians at {-4,-2,0,2,4}² with std 0.05; equal weights.
"""
import math
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np


class ToyDataset(NamedTuple):
  name: str
  dim: int
  sample: Callable[[jax.Array, int], jax.Array]  # (key, n) -> (n, dim)
  centers: Optional[np.ndarray]  # (K, dim) component means, for mode metrics; None if no modes
  std: float                     # component std (mode metrics' unit); noise std otherwise


def gaussian_mixture(name: str, centers, std: float) -> ToyDataset:
  """An equal-weight mixture of isotropic Gaussians N(centers[k], std² I)."""
  centers = np.asarray(centers, np.float32)

  def sample(key, n):
    k_mode, k_noise = jax.random.split(key)
    idx = jax.random.randint(k_mode, (n,), 0, centers.shape[0])
    noise = jax.random.normal(k_noise, (n, centers.shape[1]))
    return jnp.asarray(centers)[idx] + std * noise

  return ToyDataset(name, centers.shape[1], sample, centers, std)


def ring(num_modes: int = 8, radius: float = 1.0, std: float = 0.01) -> ToyDataset:
  """`num_modes` Gaussians evenly spaced on a circle (PacGAN: 8 modes, radius 1, std 0.01)."""
  angles = 2 * math.pi * np.arange(num_modes) / num_modes
  centers = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
  return gaussian_mixture('ring', centers, std)


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> ToyDataset:
  """side² Gaussians on a square grid centred at 0 (PacGAN: 5×5 at {-4,-2,0,2,4}², std 0.05)."""
  coords = spacing * (np.arange(side) - (side - 1) / 2)
  centers = np.stack(np.meshgrid(coords, coords, indexing='ij'), axis=-1).reshape(-1, 2)
  return gaussian_mixture('grid', centers, std)


def mixture_1d(num_modes: int = 5, spacing: float = 2.0, std: float = 0.1) -> ToyDataset:
  """A 1-D mixture: `num_modes` Gaussians at spacing·(i - (K-1)/2) with std `std`."""
  centers = (spacing * (np.arange(num_modes) - (num_modes - 1) / 2))[:, None]
  return gaussian_mixture('mixture_1d', centers, std)


def swiss_roll(noise: float = 0.05, scale: float = 0.1) -> ToyDataset:
  """The 2-D swiss roll: t ~ U[1.5π, 4.5π], x = scale·(t cos t, t sin t) + noise·N(0, I).

  The curve of sklearn's make_swiss_roll, projected to its (x, z) plane; no modes.
  """
  def sample(key, n):
    k_t, k_noise = jax.random.split(key)
    t = 1.5 * math.pi * (1 + 2 * jax.random.uniform(k_t, (n,)))
    curve = scale * jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=1)
    return curve + noise * jax.random.normal(k_noise, (n, 2))

  return ToyDataset('swiss_roll', 2, sample, None, noise)


DATASETS = {
    'ring': ring,
    'grid': grid,
    'mixture_1d': mixture_1d,
    'swiss_roll': swiss_roll,
}


def get(name: str, **options) -> ToyDataset:
  """Returns the toy dataset called `name`, built with `options`."""
  if name not in DATASETS:
    raise ValueError(f'unknown dataset {name!r}; valid datasets: {", ".join(sorted(DATASETS))}')
  try:
    return DATASETS[name](**options)
  except TypeError:
    raise ValueError(f'dataset {name!r} does not take options {sorted(options)}') from None
