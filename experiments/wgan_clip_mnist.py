"""The original WGAN on the offline MNIST digits: DCGAN critic, weights clipped to [-0.01, 0.01],
RMSProp 5e-5, n_critic 5, batch 64 (Arjovsky et al. 2017, arXiv:1701.07875, Algorithm 1)."""
from gan_jax import configs


def get_config():
  c = configs.image_config('mnist5k', 28)
  c.objective.name = 'wasserstein'
  c.penalty.update(name='weight_clipping', clip=0.01)
  c.model.g.channels = 32
  c.model.d.channels = 32
  c.optim.update(g_optimizer='rmsprop', d_optimizer='rmsprop', g_lr=5e-5, d_lr=5e-5, n_critic=5)
  c.train.update(steps=5_000, eval_every=1_000, checkpoint_every=500)
  return c
