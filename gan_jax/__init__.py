"""gan_jax: GAN experiments in JAX/Flax, chosen by config.

`gan_jax.load(workdir)` returns a trained GAN of a run (gan_jax/sampling.py); importing gan_jax
stays cheap: JAX and the rest are imported on first use of `load`.
"""
__version__ = '0.1.0'
__all__ = ['load']


def load(workdir: str, step=None, generator: str = 'ema', **kwargs):
  """The GAN trained in `workdir` (see `gan_jax.sampling.load`): `.generate(n, seed=0)`,
  `.discriminate(images)`, `.config`, `.step`, `.num_classes`, `.image_shape`."""
  from gan_jax import sampling  # pylint: disable=import-outside-toplevel
  return sampling.load(workdir, step=step, generator=generator, **kwargs)
