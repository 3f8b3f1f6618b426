"""gan_jax: GAN experiments in JAX/Flax, chosen by config."""
__version__ = '0.1.0'
