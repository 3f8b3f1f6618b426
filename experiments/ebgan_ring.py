"""Energy-based GAN on the ring: an autoencoder discriminator whose energy is its reconstruction error.

Zhao et al. 2017 (arXiv:1609.03126): L_D = E(x) + [m - E(G(z))]₊, L_G = E(G(z)). The margin is
set to the scale of this data's energies (mean squared error of 2-D points on the unit circle).
"""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.objective.update(name='ebgan', margin=0.5)
  c.model.discriminator = 'mlp_autoencoder'
  c.model.d = {'hidden': (128, 128), 'code_dim': 2, 'activation': 'leaky_relu', 'norm': 'none'}
  return c
