"""Energy-based GAN on the offline MNIST digits: a conv autoencoder discriminator whose energy is
the reconstruction error. Zhao et al. 2017 (arXiv:1609.03126): L_D = E(x) + [m - E(G(z))]₊,
L_G = E(G(z)); Adam 1e-3 (paper), β1 = 0.5, batch 64. The margin suits per-pixel MSE energies of
images in [-1, 1]."""
from gan_jax import configs


def get_config():
  c = configs.image_config('mnist5k', 28)
  c.objective.update(name='ebgan', margin=0.3)
  c.model.discriminator = 'dcgan_autoencoder'
  c.model.g.channels = 32
  c.model.d = {'channels': 32, 'conditioning': 'none'}
  c.optim.update(g_lr=1e-3, d_lr=1e-3)
  c.train.update(steps=3_000, eval_every=1_000, checkpoint_every=500)
  return c
