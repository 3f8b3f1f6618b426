"""Phenomenon: vanishing gradients of the saturating generator loss (S. Ermon and A. Grover,
"Deep Generative Models", lecture 9, Stanford CS236: G's loss and its gradient against D(G(z));
Goodfellow et al. 2014, arXiv:1406.2661, sec. 3).

A plain non-saturating GAN on a ring of 8 Gaussians trains G to each of g_stages iterations; G
is then frozen and a fresh D is trained against it. Every measure_every D updates, the generator
gradient norm ‖∇_θ L_G‖ is measured for the saturating loss log(1 - D(G(z))) and the
non-saturating loss -log D(G(z)). As D gets better, D(G(z)) → 0 and the saturating gradient vanishes with it while
the non-saturating one does not (Arjovsky & Bottou 2017, arXiv:1701.04862, figures 2 and 3).
The ring has radius 2 (PacGAN's has 1) so that the untrained G's samples (within radius ~1) miss
the data: the "unlucky initial guess" of M. Borisyak's GAN lecture (HSE), where D can reject
every fake. Once G has reached some modes (the later stages), D cannot reject those samples,
D(G(z)) stays away from 0, and neither gradient vanishes.
"""
import ml_collections

from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.task = 'phenomenon'
  c.phenomenon = ml_collections.ConfigDict({
      'name': 'vanishing_gradients',
      'g_stages': (0, 500, 2000),
      'd_steps': 1000,
      'measure_every': 50,
      'd_lr': 1e-3,
      'num_samples': 4096,
  })
  c.data.radius = 2.0
  return c
