"""The L1-only baseline of pix2pix_colorize_mnist.py: λ_GAN = 0, pure L1 regression with the same
U-Net, data and steps (D is not trained): the colours averaged where the grey image is ambiguous."""
from gan_jax import pix2pix


def get_config():
  return pix2pix.digits_config('stacked_mnist', 'colorize', lambda_gan=0.0)
