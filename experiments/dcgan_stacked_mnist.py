"""DCGAN on Stacked MNIST (1,000 modes: three mnist5k digits as R, G, B), the baseline of
PacGAN's Table 2 protocol.

Lin et al. 2018, "PacGAN: The power of two samples in generative adversarial networks"
(arXiv:1712.04086), sec. 5.2 / Table 2 (after Metz et al. 2017, "Unrolled GANs"): 26,000
samples, each channel classified by a digit classifier (here the offline digit CNN), modes = the
distinct (d_R, d_G, d_B) triples seen, reverse KL(p_fake ‖ uniform over 1,000). PacGAN reports
99 modes for its DCGAN. A DCGAN of Radford et al. 2016 (arXiv:1511.06434) at this repository's
CPU size (32 base channels), non-saturating loss, Adam 2e-4, β1 = 0.5, batch 64.
"""
from gan_jax import configs


def get_config():
  c = configs.image_config('stacked_mnist', 28)
  c.model.g.channels = 32
  c.model.d.channels = 32
  c.train.update(steps=6_000, eval_every=2_000, checkpoint_every=1_000)
  c.optim.update(ema_start=1_000, ema_standing_stats=20)  # as the digits recipe
  c.eval.update(metrics=('stacked_modes',), num_samples=26_000)
  return c
