"""A small class-conditional BigGAN on mnist5k's digits (resized to 32×32) that trains on a
2-core CPU: biggan_cifar.py's recipe (Brock et al. 2019, arXiv:1809.11096, as StudioGAN
configures it for CIFAR-10: hinge loss, hierarchical z, shared class embedding and conditional
BatchNorm, projection D, self-attention at 16×16 (Zhang et al. 2019, arXiv:1805.08318), spectral
norm, orthogonal init, Adam 2e-4 β = (0.5, 0.999)) at 8 channels instead of 96 (blocks of 32
channels), a shared embedding of 32 instead of 128, 2 D steps per G step instead of 5, an EMA of
0.999 from step 500, and 2,400 iterations: about 15 minutes of a 2-core CPU.
"""
import os

from gan_jax import configs


def get_config():
  cifar = configs.load_file(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                         'biggan_cifar.py'))
  c = configs.image_config('mnist5k', 32)
  c.objective, c.model, c.optim = cifar.objective, cifar.model, cifar.optim
  c.model.g.update(channels=8, shared_dim=32)
  c.model.d.channels = 8
  c.optim.update(n_critic=2, ema_decay=0.999, ema_start=500)
  c.train.update(steps=2_400, steps_per_call=10, log_every=100, eval_every=800,
                 checkpoint_every=800)
  c.eval.metrics += ('c2st',)  # the digits recipe's four numbers (benchmarks/digits.py)
  return c
