"""Generative moment matching network on the ring: G minimises the MMD to the data, no D.

Li, Swersky & Zemel 2015, "Generative Moment Matching Networks" (arXiv:1502.02761): the loss is
the unbiased MMD² between a real and a generated batch under a mixture of Gaussian kernels on the
samples themselves (the 'identity' discriminator, no parameters, so D's updates do nothing). The
bandwidths span this data's scales, from a few stds of a mode (0.01) to the ring's radius (1).
G's learning rate is 10× the GAN baseline's: its loss is a fixed statistic, not a moving D, and
at 1e-4 it has not yet found the modes after 5k iterations.
"""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.objective.update(name='mmd', bandwidths=(0.05, 0.1, 0.2, 0.5, 1.0))
  c.model.discriminator = 'identity'
  c.model.d = {}
  c.optim.update(g_lr=1e-3)
  return c
