"""Phenomenon: the optimal discriminator and the Jensen-Shannon divergence on 1-D Gaussians.

p = N(0, 1) is the data; q = N(μ, 1) is a linear generator x = z + μ held fixed. For each μ a
discriminator (MLP 64-64, tanh) is trained to convergence with the BCE loss (the library's d_step,
vmapped over μ). The plot shows the trained D(x) against D*(x) = p/(p+q) and the trained D's loss
against log 4 - 2·JSD(p, q) as μ → 0 (Goodfellow et al. 2014, arXiv:1406.2661, Prop. 1, Thm. 1).
Run: python -m gan_jax.main --config=experiments/phenomenon_optimal_discriminator.py \
       --workdir=runs/optimal_discriminator
"""
import ml_collections

from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.task = 'phenomenon'
  c.phenomenon = ml_collections.ConfigDict({
      'name': 'optimal_discriminator',
      'q_means': (4.0, 3.0, 2.0, 1.5, 1.0, 0.5, 0.25, 0.0),
      'q_std': 1.0,
      'd_steps': 2000,
      'plot_means': (2.0, 1.0, 0.25),
  })
  c.data = ml_collections.ConfigDict({'name': 'mixture_1d', 'num_modes': 1, 'std': 1.0,
                                      'batch_size': 512})
  c.model.z_dim = 1
  c.model.g.hidden = ()  # q is the linear generator x = σz + μ, set to N(μ, q_std²)
  c.model.d.update(hidden=(64, 64), activation='tanh')
  c.optim.update(d_lr=3e-3, betas=(0.9, 0.999))
  return c
