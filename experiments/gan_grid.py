"""Plain non-saturating GAN on PacGAN's 5×5 grid of Gaussians (std 0.05): the baseline.

Goodfellow et al. 2014 (arXiv:1406.2661). PacGAN (Lin et al. 2018, arXiv:1712.04086, Table 1)
reports 17.3 ± 0.8 of 25 modes for its GAN on this grid.
"""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.data.name = 'grid'
  return c
