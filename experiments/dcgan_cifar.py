"""DCGAN on CIFAR-10 (Radford et al. 2016, arXiv:1511.06434): non-saturating loss, Adam 2e-4,
β1 = 0.5, batch 64, 64 base channels at 32×32."""
from gan_jax import configs


def get_config():
  c = configs.add_tfds_fields(configs.image_config('cifar10', 32))
  c.train.update(steps=50_000, eval_every=5_000, checkpoint_every=5_000)
  return c
