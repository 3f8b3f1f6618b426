"""BigGAN on CIFAR-10 as StudioGAN configures it (Kang et al., PyTorch-StudioGAN,
src/configs/CIFAR10/BigGAN.yaml and its defaults in src/config.py): Brock et al. 2019, "Large
Scale GAN Training for High Fidelity Natural Image Synthesis" (arXiv:1809.11096), with SAGAN's
self-attention (Zhang et al. 2019, arXiv:1805.08318) at 16×16 in G and D.

G and D 96 channels, z 80 (4 chunks of 20: hierarchical latents), shared class embedding 128,
conditional BatchNorm in G, projection D (Miyato & Koyama 2018, arXiv:1802.05637), spectral norm
in both, orthogonal initialisation; hinge loss, Adam 2e-4 for both with β = (0.5, 0.999),
5 D steps per G step, batch 64, 100k G steps; EMA of G with decay 0.9999 from step 1000 (and
standing statistics for its BatchNorm). G has 9,416,196 parameters and D 2,415,170, as
StudioGAN's (gan_jax/biggan.py says how they were counted).
"""
from gan_jax import configs


def get_config():
  c = configs.add_tfds_fields(configs.image_config('cifar10', 32))
  c.objective.name = 'hinge'
  c.model.update(generator='biggan', discriminator='biggan', z_dim=80)
  c.model.g = {'channels': 96, 'shared_dim': 128, 'conditioning': 'cbn',
               'attention_resolution': 16}
  c.model.d = {'channels': 96, 'conditioning': 'projection', 'attention_resolution': 16}
  c.optim.update(g_lr=2e-4, d_lr=2e-4, betas=(0.5, 0.999), n_critic=5, ema_decay=0.9999,
                 ema_start=1_000, ema_standing_stats=20)
  c.train.update(steps=100_000, steps_per_call=10, log_every=100, eval_every=5_000,
                 checkpoint_every=5_000)
  return c
