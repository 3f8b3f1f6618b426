"""Hinge loss on the 5×5 grid. Lim & Ye 2017 (arXiv:1705.02894); Miyato et al. 2018 (arXiv:1802.05957)."""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.data.name = 'grid'
  c.objective.name = 'hinge'
  return c
