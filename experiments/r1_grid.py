"""The grid's recipe: non-saturating GAN + R1, the toy benchmark's best method on PacGAN's 5×5 grid.

experiments/default.py's networks (3×64 MLPs, batch 256) and R1 (Mescheder et al. 2018,
arXiv:1801.04406, weight γ/2 = 1), with Adam at 3e-3 decaying linearly to 0 over 10k iterations:
25/25 modes in every seed of benchmarks/RESULTS.md's toy table. How it was found (one-off runs,
2e-3 → 3e-3, 5k → 10k iterations, R1 weight, batch, packing) is in benchmarks/RESULTS.md.
"""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.data.update(name='grid', batch_size=256)
  c.penalty.update(name='r1', weight=1.0)
  c.model.g.hidden = (64, 64, 64)
  c.model.d.hidden = (64, 64, 64)
  c.optim.update(g_lr=3e-3, d_lr=3e-3, lr_schedule='linear')
  c.train.update(steps=10_000, eval_every=5_000, checkpoint_every=5_000)
  return c
