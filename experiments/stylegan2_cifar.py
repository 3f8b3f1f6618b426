"""StyleGAN2 + ADA on CIFAR-10, the `cifar` configuration of stylegan2-ada-pytorch (Karras et al.
2020, "Training Generative Adversarial Networks with Limited Data", arXiv:2006.06676, its
train.py): Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"
(arXiv:1912.04958) networks, conditional on the class.

G: mapping network of 2 layers (lr × 0.01), w 512, channel_base 32768 capped at 512 channels,
output skips, noise inputs, modulated/demodulated convs; no style mixing and no path-length
regularisation (the cifar config switches both off). D: the 'orig' architecture (no residual
skips; the cifar config), minibatch stddev over groups of 32, projection by a label mapping
network. Non-saturating loss, R1 with γ = 0.01 (weight γ/2) lazily every 16 D steps, Adam
lr 0.0025 with β = (0, 0.99), both adjusted for the lazy intervals as the reference does (lr ·
k/(k+1), β^(k/(k+1)), k = 16 for D and 4 for G), batch 64, EMA half-life 500k images
(decay 0.5^(64/500000) per step) ramped up as the reference does (a half-life of min(500k,
0.05 · images seen): optim.ema_rampup), ADA toward r_t = 0.6. 100M images =
1,562,500 steps. G has 20,215,315 parameters and D 23,089,664, as the reference's
(gan_jax/stylegan2.py says how they were counted).
"""
from gan_jax import configs

BATCH = 64
D_RATIO, G_RATIO = 16 / 17, 4 / 5  # the lazy intervals' mb_ratio (reference training_loop.py)


def get_config():
  c = configs.add_tfds_fields(configs.image_config('cifar10', 32))
  c.objective.name = 'non_saturating'
  c.model.update(generator='stylegan2', discriminator='stylegan2', z_dim=512)
  c.model.g = {'w_dim': 512, 'mapping_layers': 2, 'channel_base': 32768, 'channel_max': 512,
               'conditioning': 'mapping', 'mixing_prob': 0.0}
  c.model.d = {'channel_base': 32768, 'channel_max': 512, 'conditioning': 'projection',
               'architecture': 'orig', 'mbstd_group': 32}
  c.penalty.update(name='r1', weight=0.01 / 2, every=16)
  c.data.batch_size = BATCH
  c.optim.update(g_lr=0.0025 * G_RATIO, d_lr=0.0025 * D_RATIO, g_betas=(0.0, 0.99 ** G_RATIO),
                 d_betas=(0.0, 0.99 ** D_RATIO), ema_decay=0.5 ** (BATCH / 500_000), ema_start=0,
                 ema_rampup=0.05)
  c.tricks.ada.update(enabled=True, target=0.6, interval=4, speed_images=500_000)
  c.train.update(steps=1_562_500, steps_per_call=10, log_every=100, eval_every=10_000,
                 checkpoint_every=10_000)
  c.eval.protocol = 'stylegan2_ada'
  return c
