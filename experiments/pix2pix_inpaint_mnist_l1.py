"""The L1-only baseline of pix2pix_inpaint_mnist.py: λ_GAN = 0, pure L1 regression with the same
U-Net, data and steps (D is not trained). Its completions are the blur the GAN term removes."""
from gan_jax import pix2pix


def get_config():
  return pix2pix.digits_config('mnist5k', 'inpaint', lambda_gan=0.0)
