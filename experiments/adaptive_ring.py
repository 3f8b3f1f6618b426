"""The adaptive schedule on the ring: train D while its loss is above c1, then G while D's loss is
below c2, each loop capped at 5 steps, all inside one jitted iteration (the discriminator stop
criteria of M. Borisyak, "Generative Adversarial Networks", HSE lecture, training tricks).

With the cross-entropy loss D's loss is log 4 ≈ 1.386 when it cannot tell real from fake: D
trains until it is ahead (loss ≤ 1.2), then G until it has caught up (D's loss ≥ 1.4). The logs
carry the loop counts `d_steps` and `g_steps` of every iteration. The toy benchmark's base recipe
otherwise (3×64 MLPs, batch 256, Adam 3e-3 decaying linearly to 0). Measured
(benchmarks/RESULTS.md, 3 seeds, 5k iterations): all 8 modes in 2 of 3 seeds.
"""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.data.batch_size = 256
  c.model.g.hidden = (64, 64, 64)
  c.model.d.hidden = (64, 64, 64)
  c.optim.update(g_lr=3e-3, d_lr=3e-3, lr_schedule='linear')
  c.tricks.adaptive.update(enabled=True, c1=1.2, c2=1.4, max_d_steps=5, max_g_steps=5)
  c.train.update(steps=5_000, eval_every=2_500, checkpoint_every=2_500)
  return c
