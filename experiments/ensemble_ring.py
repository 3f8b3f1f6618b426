"""An ensemble of three discriminators of increasing capacity on the ring (M. Borisyak,
"Generative Adversarial Networks", HSE lecture, training tricks; cf. Durugkar et al. 2017,
"Generative Multi-Adversarial Networks", arXiv:1611.01673).

Simple discriminators give G gradients early, the strong one a precise solution; G minimises the
sum of its losses against all three, and the logged `d_objective` (the sum of the members' losses,
each also logged as `d_objective_k`) measures training progress. Members: 1×16, 2×32, 3×64 MLPs.
The toy benchmark's base recipe otherwise (batch 256, Adam 3e-3 decaying linearly to 0).
Measured (benchmarks/RESULTS.md, 10 seeds, 5k iterations): it does worse than one D here. G
spreads along the circle between the modes (all 8 in 0/10 seeds, 1% HQ samples): the 1×16 member
cannot resolve the modes, sits at log 4 and pulls G toward a smooth ring.
"""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.data.batch_size = 256
  c.model.g.hidden = (64, 64, 64)
  c.optim.update(g_lr=3e-3, d_lr=3e-3, lr_schedule='linear')
  c.tricks.ensemble = ((16,), (32, 32), (64, 64, 64))
  c.train.update(steps=5_000, eval_every=2_500, checkpoint_every=2_500)
  return c
