"""EBGAN-PT on the offline MNIST digits: ebgan_mnist.py with the pulling-away term.

Zhao, Mathieu & LeCun 2017, "Energy-based Generative Adversarial Network" (arXiv:1609.03126),
eq. 8: G's loss gains λ_PT · f_PT, the mean squared cosine similarity of the encoder codes of a
fake batch, which pushes the samples apart (against mode collapse); the paper's λ_PT = 0.1.
"""
import os

from gan_jax import configs


def get_config():
  c = configs.load_file(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                     'ebgan_mnist.py'))
  c.tricks.pulling_away = 0.1
  return c
