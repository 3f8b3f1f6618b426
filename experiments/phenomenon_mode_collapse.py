"""Phenomenon: mode collapse and mode hopping on a mixture of 16 Gaussians (S. Ermon and
A. Grover, "Deep Generative Models", lecture 9, Stanford CS236).

The data is the 16-Gaussian mixture of the lecture's figure (as in the ODE-GAN notebook of
K. P. Murphy, "Probabilistic Machine Learning: Advanced Topics"): a 4×4 grid at
{-1.5, -0.5, 0.5, 1.5}², std 0.02, i.e. toy_data.grid(side=4, spacing=1, std=0.02). A plain
non-saturating GAN (the networks of experiments/gan_ring.py) whose generator learns 10× faster
than its discriminator (Adam 1e-3 against 1e-4; M. Borisyak's GAN lecture, HSE: "mode collapse
is a syndrome of a poorly trained discriminator") puts nearly all its samples on one mode and
hops to another mode between snapshots. The R1 recipe of experiments/default.py, run beside it,
covers all 16. Plots: sample snapshots, and per step × mode the share of samples nearest each
mode and its HQ samples.
"""
import ml_collections

from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.task = 'phenomenon'
  c.data = ml_collections.ConfigDict({'name': 'grid', 'side': 4, 'spacing': 1.0, 'std': 0.02,
                                      'batch_size': 128})
  c.optim.g_lr = 1e-3
  c.train.steps = 3000
  c.phenomenon = ml_collections.ConfigDict({
      'name': 'mode_collapse',
      'snapshot_every': 250,
      'num_shown': 8,
      'compare': {
          'r1': {'penalty': {'name': 'r1', 'weight': 1.0},
                 'data': {'batch_size': 256},
                 'model': {'g': {'hidden': (64, 64, 64)}, 'd': {'hidden': (64, 64, 64)}},
                 'optim': {'g_lr': 2e-3, 'd_lr': 2e-3, 'lr_schedule': 'linear'},
                 'train': {'steps': 5000}},
      },
  })
  return c
