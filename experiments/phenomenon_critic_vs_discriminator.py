"""Phenomenon: a saturating discriminator against WGAN critics on two Gaussians (the WGAN figure
of M. Borisyak's GAN lecture, HSE; Arjovsky et al. 2017, arXiv:1701.07875, figure 2).

The data is N(0, 0.3²), the fake a fixed linear generator N(-4, 0.3²): almost disjoint supports.
A sigmoid D (BCE), a WGAN-GP critic (Gulrajani et al. 2017, λ = 10) and a weight-clipped WGAN
critic (c = 0.01, RMSProp) are each trained against the fake; the plot shows each function and
its derivative over the line.
"""
import ml_collections

from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.task = 'phenomenon'
  c.phenomenon = ml_collections.ConfigDict({
      'name': 'critic_vs_discriminator',
      'fake_mean': -4.0,
      'fake_std': 0.3,
      'd_steps': 2000,
      'critics': {
          'wgan_gp': {'objective': {'name': 'wasserstein'},
                      'penalty': {'name': 'wgan_gp', 'weight': 10.0},
                      'optim': {'betas': (0.5, 0.9)}},
          'wgan_clip': {'objective': {'name': 'wasserstein'},
                        'penalty': {'name': 'weight_clipping', 'weight': 0.0, 'clip': 0.01},
                        'optim': {'d_optimizer': 'rmsprop', 'd_lr': 5e-4}},
      },
  })
  c.data = ml_collections.ConfigDict({'name': 'mixture_1d', 'num_modes': 1, 'std': 0.3,
                                      'batch_size': 256})
  c.model.z_dim = 1
  c.model.g.hidden = ()  # the fake is the linear generator x = σz + μ, set to N(-4, 0.3²)
  c.model.d.hidden = (64, 64)
  c.optim.d_lr = 1e-3
  return c
