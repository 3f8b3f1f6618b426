"""A small StyleGAN2 on mnist5k's digits (resized to 32×32) that trains on a 2-core CPU, with
every regulariser of the paper on (Karras et al. 2020, "Analyzing and Improving the Image
Quality of StyleGAN", arXiv:1912.04958): style mixing (p 0.9), path-length regularisation
(weight 2, every 4 G steps, on half the batch), lazy R1 (every 16 D steps; γ = 1 here), the
8-layer mapping network at lr × 0.01, the residual D with minibatch stddev (groups of 4).

Channels min(1024 / resolution, 64) (stylegan2_cifar.py: min(32768 / resolution, 512)), w 128,
batch 32, Adam 0.0025 β = (0, 0.99) adjusted for the lazy intervals as the reference does, EMA
of G with a half-life of 10k images.
"""
from gan_jax import configs

BATCH = 32
D_RATIO, G_RATIO = 16 / 17, 4 / 5  # the lazy intervals' mb_ratio (reference training_loop.py)


def get_config():
  c = configs.image_config('mnist5k', 32)
  c.objective.name = 'non_saturating'
  c.data.batch_size = BATCH
  c.model.update(generator='stylegan2', discriminator='stylegan2', z_dim=128)
  c.model.g = {'w_dim': 128, 'mapping_layers': 8, 'channel_base': 1024, 'channel_max': 64,
               'mixing_prob': 0.9}
  c.model.d = {'channel_base': 1024, 'channel_max': 64, 'architecture': 'resnet',
               'mbstd_group': 4}
  c.penalty.update(name='r1', weight=1.0 / 2, every=16)
  c.tricks.path_length.update(weight=2.0, every=4, decay=0.01, batch_shrink=2)
  c.optim.update(g_lr=0.0025 * G_RATIO, d_lr=0.0025 * D_RATIO, g_betas=(0.0, 0.99 ** G_RATIO),
                 d_betas=(0.0, 0.99 ** D_RATIO), ema_decay=0.5 ** (BATCH / 10_000))
  c.train.update(steps=3_000, steps_per_call=10, log_every=100, eval_every=1_000,
                 checkpoint_every=1_000)
  return c
