"""pix2pix colourisation of Stacked MNIST: the grey luma of three digits -> their R, G, B channels.

Isola et al. 2017 (arXiv:1611.07004), as pix2pix_inpaint_mnist.py: U-Net G, 16×16 PatchGAN on
(grey, colour) pairs, L_GAN + 100·L1, D's loss halved. The input is Y = 0.299 R + 0.587 G +
0.114 B of a Stacked MNIST image (three mnist5k digits as channels, padded to 32×32); where
strokes overlap, or where a faint stroke of one digit matches a bright one of another, the
colours are ambiguous, and L1 regression averages them. Sizes and rates as
pix2pix_inpaint_mnist.py (Adam 1e-3: at the paper's 2e-4, 1,000 steps taught neither model to
separate the digits; at 1e-3 the GAN run colours all three, while the L1 baseline paints little
more than the green one). pix2pix_colorize_mnist_l1.py is the same run with λ_GAN = 0;
benchmarks/pix2pix_sharpness.py compares them.
"""
from gan_jax import pix2pix


def get_config():
  return pix2pix.digits_config('stacked_mnist', 'colorize')
