"""The GAN as an auxiliary loss: pix2pix, conditional image-to-image translation.

Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks"
(arXiv:1611.07004). A generator G maps an input image x to an output; a discriminator D sees the
pair (x, image) concatenated along channels and outputs one logit per image patch (PatchGAN).
With any objective of the zoo (`losses`), on pairs (x, y):

  G minimises  λ_GAN · g_loss(D(x, G(x))) + λ_L1 · (1/n) Σ |G(x) - y|
  D minimises  s · d_loss(D(x, y), D(x, G(x))) + penalty weight · penalty

The paper's setting is λ_GAN = 1, λ_L1 = 100, s = 1/2 (D's loss halved), the non-saturating
objective, Adam 2e-4, β = (0.5, 0.999). This is the "GAN as an auxiliary loss" of M. Borisyak's
lecture "Generative Adversarial Networks" (HSE), L = (1/n)|f(x) - y| + λ·L_GAN with
λ = λ_GAN / λ_L1; λ_GAN = 0 is pure L1 regression (the baseline; D is then neither trained nor
evaluated, and its logged losses are 0). Dropout in G's decoder is the only noise (no z), its
keys threaded by hand from the loop key. Each iteration runs G forward once (`jax.vjp`), updates
D on that output, then pulls G's loss gradient back through the same forward pass, as the
paper's code does.

Config (`base_config`): config.task = 'pix2pix'; config.data: an image dataset plus `pairs`
('inpaint' | 'colorize' | 'native', see `paired_data`); config.model.g: the U-Net
(channels, depth, dropout, dropout_layers, norm), config.model.d: the PatchGAN
(receptive_field 1 | 16 | 34 | 70 | ..., channels, norm); config.pix2pix: lambda_gan,
lambda_l1, d_loss_scale. Eval on the held-out pairs of config.eval.real_split: l1, psnr,
sharpness_output, sharpness_target (always) and fid, kid, c2st of outputs vs targets
(config.eval.metrics, on digit-classifier features for digits).

The package: `networks` (U-Net, PatchGAN), `steps` (the pure steps), `configs` (the recipes),
`experiment` (the task's experiment on gan_jax/experiment.py). Its public names are here.
"""
from gan_jax.pix2pix.configs import base_config, digits_config
from gan_jax.pix2pix.experiment import (Pix2PixExperiment, l1_error, load_pairs,
                                        mean_gradient_magnitude, psnr, triplet_grid)
from gan_jax.pix2pix.networks import (PatchGAN, RECEPTIVE_FIELDS, UNet, patch_grid_size,
                                      receptive_field)
from gan_jax.pix2pix.steps import D_METRICS, Pix2Pix, build, create_state, step_keys, train_call

__all__ = ['base_config', 'digits_config', 'Pix2PixExperiment', 'l1_error', 'load_pairs',
           'mean_gradient_magnitude', 'psnr', 'triplet_grid', 'PatchGAN', 'RECEPTIVE_FIELDS',
           'UNet', 'patch_grid_size', 'receptive_field', 'D_METRICS', 'Pix2Pix', 'build',
           'create_state', 'step_keys', 'train_call']
