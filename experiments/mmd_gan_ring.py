"""MMD-GAN on the ring: the MMD of a Gaussian mixture kernel on an embedding that D learns.

Li et al. 2017, "MMD GAN: Towards Deeper Understanding of Moment Matching Network"
(arXiv:1705.08584): D maps samples to a 16-d embedding f(x) and maximises the unbiased MMD²
between real and fake embeddings, G minimises it (without the paper's autoencoder terms). The
kernel bandwidths are the paper's, {1, 2, 4, 8, 16}; D's weights are clipped, as in the paper
(here to [-0.1, 0.1]), and G learns 10× faster than D: an unconstrained or fast D separates the
embeddings until the MMD saturates and G collapses to a few modes.
"""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.objective.update(name='mmd', bandwidths=(1.0, 2.0, 4.0, 8.0, 16.0))
  c.model.d.update(embedding=16)
  c.penalty.update(name='weight_clipping', clip=0.1)
  c.optim.update(g_lr=1e-3, d_lr=1e-4)
  return c
