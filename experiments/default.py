"""The default experiment (`make run`): the most reliable recipe found for PacGAN's ring.

Non-saturating GAN (Goodfellow et al. 2014, arXiv:1406.2661) + R1 on real data (Mescheder et
al. 2018, arXiv:1801.04406, weight γ/2 = 1), small MLPs, batch 256, Adam at a high rate (2e-3)
decaying linearly to 0 over 20k iterations. R1 is what keeps all 8 modes (without it the same
networks collapse); the high rate with its decay is what makes the modes sharp (HQ). How it was
found, and its results over seeds, are in benchmarks/RESULTS.md.
"""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.penalty.update(name='r1', weight=1.0)
  c.data.batch_size = 256
  c.model.g.hidden = (64, 64, 64)
  c.model.d.hidden = (64, 64, 64)
  c.optim.update(g_lr=2e-3, d_lr=2e-3, lr_schedule='linear')
  c.train.update(steps=20_000, eval_every=5_000, checkpoint_every=5_000)
  return c
