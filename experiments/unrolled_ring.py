"""Unrolled GAN on the ring: G's loss through 5 unrolled D updates, differentiated through them.

Metz et al. 2017, "Unrolled Generative Adversarial Networks" (arXiv:1611.02163): G sees how D
would answer its move, which discourages hopping from mode to mode. Each G step runs 5 extra D
updates (Adam state included) inside its loss, so an iteration costs about 8 plain ones. The
toy benchmark's base recipe (3×64 MLPs, batch 256, Adam 3e-3 decaying linearly to 0).
"""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.data.batch_size = 256
  c.model.g.hidden = (64, 64, 64)
  c.model.d.hidden = (64, 64, 64)
  c.optim.update(g_lr=3e-3, d_lr=3e-3, lr_schedule='linear')
  c.tricks.unroll_steps = 5
  c.train.update(steps=5_000, eval_every=2_500, checkpoint_every=2_500)
  return c
