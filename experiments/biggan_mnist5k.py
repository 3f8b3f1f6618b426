"""A small class-conditional BigGAN on mnist5k's digits (resized to 32×32) that trains on a
2-core CPU: biggan_cifar.py's recipe (Brock et al. 2019, arXiv:1809.11096, as StudioGAN
configures it for CIFAR-10) at 16 channels instead of 96, 2 D steps per G step instead of 5.

Hierarchical z (80 = 4 chunks of 20), shared class embedding 32, conditional BatchNorm in G,
projection D, self-attention at 16×16 in both (Zhang et al. 2019, arXiv:1805.08318), spectral
norm everywhere, orthogonal init, hinge loss, Adam 2e-4 β = (0.5, 0.999), EMA 0.999 of G from
step 500 with standing statistics.
"""
from gan_jax import configs


def get_config():
  c = configs.image_config('mnist5k', 32)
  c.objective.name = 'hinge'
  c.model.update(generator='biggan', discriminator='biggan', z_dim=80)
  c.model.g = {'channels': 16, 'shared_dim': 32, 'conditioning': 'cbn',
               'attention_resolution': 16}
  c.model.d = {'channels': 16, 'conditioning': 'projection', 'attention_resolution': 16}
  c.optim.update(g_lr=2e-4, d_lr=2e-4, betas=(0.5, 0.999), n_critic=2, ema_decay=0.999,
                 ema_start=500, ema_standing_stats=20)
  c.train.update(steps=3_000, steps_per_call=10, log_every=100, eval_every=1_000,
                 checkpoint_every=1_000)
  return c
