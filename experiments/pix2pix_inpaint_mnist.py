"""pix2pix inpainting on the offline MNIST digits: the bottom half masked -> the whole digit.

Isola et al. 2017 (arXiv:1611.07004): U-Net G, PatchGAN D on (input, image) pairs, G's loss
L_GAN + 100·L1, D's loss halved, non-saturating objective, Adam β = (0.5, 0.999). Digits padded to
32×32 so the 5-level U-Net reaches 1×1 and every output pixel sees the whole visible half.
Sized for the 2-core CPU (GAN run and baseline together in well under 10 minutes): widths 16
(not 64), a 16×16 PatchGAN (14×14 patches; 70×70 would be nearly global on 32×32), batch 32,
1,000 steps, and Adam at 1e-3 for both nets (5× the paper's 2e-4, at which 1,000 steps left both
models underfit: sharpness ratio 0.78 GAN vs 0.69 L1-only, against 0.92 vs 0.83 at 1e-3). The bottom half of a digit is ambiguous given
the top (a 7 or a 9, a 3 or an 8): L1 regression averages the candidates into a blur, the
patch discriminator pushes toward one sharp completion. pix2pix_inpaint_mnist_l1.py is the
same run with λ_GAN = 0; benchmarks/pix2pix_sharpness.py compares them.
"""
from gan_jax import pix2pix


def get_config():
  return pix2pix.digits_config('mnist5k', 'inpaint')
