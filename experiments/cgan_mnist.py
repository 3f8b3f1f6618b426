"""Conditional GAN on the offline MNIST digits: the label one-hot concatenated to G's noise and to
D's input channels (Mirza & Osindero 2014, arXiv:1411.1784), on the DCGAN of dcgan_mnist.py.

The sample grid has one row per class, as the cGAN paper's figure 2.
"""
from gan_jax import configs


def get_config():
  c = configs.image_config('mnist5k', 28)
  c.model.g.update(channels=32, conditioning='concat')
  c.model.d.update(channels=32, conditioning='concat')
  c.train.update(steps=3_000, eval_every=1_000, checkpoint_every=500)
  return c
