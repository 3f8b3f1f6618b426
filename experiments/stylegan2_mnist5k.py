"""A small StyleGAN2 on mnist5k's digits (resized to 32×32) that trains on a 2-core CPU: the
`auto` configuration of stylegan2-ada-pytorch (Karras et al. 2020, "Training Generative
Adversarial Networks with Limited Data", arXiv:2006.06676, its train.py) at 32×32 and batch 32,
which keeps every regulariser of StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the
Image Quality of StyleGAN", arXiv:1912.04958) on: style mixing (p 0.9), path-length
regularisation (weight 2, every 4 G steps, on half the batch), lazy R1 every 16 D steps with
`auto`'s γ = 0.0002 · 32² / 32 = 0.0064, the 2-layer mapping network at lr × 0.01, the residual
D with minibatch stddev (groups of 4), EMA half-life 10k images ramped up over the first 5% of
the images seen.

Channels min(512 / resolution, 32) (`auto`: min(16384 / resolution, 512)), w 128, 3,500
iterations (about 13 minutes of a 2-core CPU), Adam 0.0025 β = (0, 0.99) adjusted for the lazy
intervals as the reference does. With γ = 1 and 8 mapping layers instead, this G collapsed to
one digit by iteration 2,000 (benchmarks/RESULTS.md).
"""
from gan_jax import configs

BATCH = 32
D_RATIO, G_RATIO = 16 / 17, 4 / 5  # the lazy intervals' mb_ratio (reference training_loop.py)


def get_config():
  c = configs.image_config('mnist5k', 32)
  c.objective.name = 'non_saturating'
  c.data.batch_size = BATCH
  c.model.update(generator='stylegan2', discriminator='stylegan2', z_dim=128)
  c.model.g = {'w_dim': 128, 'mapping_layers': 2, 'channel_base': 512, 'channel_max': 32,
               'mixing_prob': 0.9}
  c.model.d = {'channel_base': 512, 'channel_max': 32, 'architecture': 'resnet',
               'mbstd_group': 4}
  c.penalty.update(name='r1', weight=0.0002 * 32 ** 2 / BATCH / 2, every=16)
  c.tricks.path_length.update(weight=2.0, every=4, decay=0.01, batch_shrink=2)
  c.optim.update(g_lr=0.0025 * G_RATIO, d_lr=0.0025 * D_RATIO, g_betas=(0.0, 0.99 ** G_RATIO),
                 d_betas=(0.0, 0.99 ** D_RATIO), ema_decay=0.5 ** (BATCH / 10_000),
                 ema_rampup=0.05)
  c.train.update(steps=3_500, steps_per_call=10, log_every=100, eval_every=1_000,
                 checkpoint_every=1_000)
  c.eval.metrics += ('c2st',)  # the digits recipe's four numbers (benchmarks/digits.py)
  return c
