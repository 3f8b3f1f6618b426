"""Non-saturating GAN with R1 on a 1-D mixture of 5 Gaussians (std 0.1, spacing 2).

The plots show the two histograms and the discriminator's output along the line.
"""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.data.name = 'mixture_1d'
  c.penalty.update(name='r1', weight=0.1)
  c.train.steps = 10_000
  return c
