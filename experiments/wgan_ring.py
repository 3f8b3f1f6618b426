"""The original WGAN on the ring: critic with weight clipping, RMSProp, n_critic = 5.

Arjovsky et al. 2017, "Wasserstein GAN" (arXiv:1701.07875), Algorithm 1: α = 5e-5, c = 0.01,
n_critic = 5, RMSProp.
"""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.objective.name = 'wasserstein'
  c.penalty.name = 'weight_clipping'
  c.penalty.clip = 0.01
  c.optim.update(g_optimizer='rmsprop', d_optimizer='rmsprop', g_lr=5e-5, d_lr=5e-5, n_critic=5)
  c.train.steps = 10_000
  return c
