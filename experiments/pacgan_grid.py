"""PacGAN4 on PacGAN's 5×5 grid: D judges packs of 4 samples, all real or all fake.

Lin et al. 2018, "PacGAN: The power of two samples in generative adversarial networks"
(arXiv:1712.04086): packing penalises mode collapse, since a pack of 4 fakes from a collapsed G
looks unlike 4 real samples. The toy benchmark's base recipe (3×64 MLPs, batch 256, Adam 3e-3
decaying linearly to 0) with `tricks.pack = 4`; D's input is 4 × 2 coordinates. Measured
(benchmarks/RESULTS.md, 10 seeds, 10k iterations): 20.4 ± 0.5 of 25 modes, few samples on them
(2% HQ); on the ring PacGAN4 gets 8/8 in every seed. experiments/r1_grid.py covers the grid.
"""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.data.update(name='grid', batch_size=256)
  c.model.g.hidden = (64, 64, 64)
  c.model.d.hidden = (64, 64, 64)
  c.optim.update(g_lr=3e-3, d_lr=3e-3, lr_schedule='linear')
  c.tricks.pack = 4
  c.train.update(steps=10_000, eval_every=5_000, checkpoint_every=5_000)
  return c
