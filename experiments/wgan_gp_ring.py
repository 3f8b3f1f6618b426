"""WGAN-GP on the ring: gradient penalty on random interpolates, Adam β = (0.5, 0.9), n_critic = 5.

Gulrajani et al. 2017 (arXiv:1704.00028), Algorithm 1 with its toy-task setting: λ = 0.1 (their
gan_toy.py: "smaller lambda seems to help for toy tasks"), lr 1e-4, batch 256.
"""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.objective.name = 'wasserstein'
  c.penalty.update(name='wgan_gp', weight=0.1, target=1.0)
  c.data.batch_size = 256
  c.optim.update(g_lr=1e-4, d_lr=1e-4, betas=(0.5, 0.9), n_critic=5)
  c.train.steps = 10_000
  return c
