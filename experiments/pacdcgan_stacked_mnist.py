"""PacDCGAN2 on Stacked MNIST: dcgan_stacked_mnist.py with D judging packs of 2 samples.

Lin et al. 2018, "PacGAN" (arXiv:1712.04086), Table 2: PacDCGAN2 captures 1,000 modes with
reverse KL 0.06 (DCGAN: 99 modes, 3.40). The packed D sees m = 2 samples concatenated on the
channel axis (tricks.pack), the rest is the DCGAN unchanged.
"""
from gan_jax import configs


def get_config():
  c = configs.image_config('stacked_mnist', 28)
  c.model.g.channels = 32
  c.model.d.channels = 32
  c.tricks.pack = 2
  c.train.update(steps=6_000, eval_every=2_000, checkpoint_every=1_000)
  c.optim.update(ema_start=1_000, ema_standing_stats=20)  # as the digits recipe
  c.eval.update(metrics=('stacked_modes',), num_samples=26_000)
  return c
