"""Plain non-saturating GAN on PacGAN's ring of 8 Gaussians: the baseline, collapse included.

Goodfellow et al. 2014 (arXiv:1406.2661). MLPs, Adam 1e-4, batch 128. PacGAN (Lin et al. 2018,
arXiv:1712.04086, Table 1) reports 6.3 ± 0.5 modes for its GAN on this ring.
"""
from gan_jax import configs


def get_config():
  return configs.toy_config()
