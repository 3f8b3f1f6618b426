"""pix2pix inpainting on the offline MNIST digits: the bottom half masked -> the whole digit.

Isola et al. 2017 (arXiv:1611.07004): U-Net G, PatchGAN D on (input, image) pairs, G's loss
L_GAN + 100·L1, D's loss halved. Digits padded to 32×32 so the 5-level U-Net reaches 1×1 and
every output pixel sees the whole visible half. The bottom half of a digit is ambiguous given
the top (a 7 or a 9, a 3 or an 8): L1 regression averages the candidates into a blur, the
patch discriminator pushes toward one sharp completion. pix2pix_inpaint_mnist_l1.py is the
same run with λ_GAN = 0; benchmarks/pix2pix_sharpness.py compares them.
"""
from gan_jax import pix2pix


def get_config():
  c = pix2pix.base_config('mnist5k', 'inpaint', 32)
  c.data.mask = 'bottom'
  c.data.batch_size = 32
  c.model.g.channels = 16
  c.model.d.update(channels=16, receptive_field=16)
  c.train.update(steps=1_000, steps_per_call=10, log_every=100, eval_every=1_000,
                 checkpoint_every=500)
  return c
