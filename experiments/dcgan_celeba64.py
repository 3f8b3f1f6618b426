"""DCGAN on CelebA at 64×64 (Radford et al. 2016, arXiv:1511.06434): centre crop 160, resize to
64 (as compare_gan), non-saturating loss, Adam 2e-4, β1 = 0.5, batch 128 (the paper's)."""
from gan_jax import configs


def get_config():
  c = configs.add_tfds_fields(configs.image_config('celeb_a', 64))
  c.data.batch_size = 128
  c.train.update(steps=50_000, eval_every=5_000, checkpoint_every=5_000)
  return c
