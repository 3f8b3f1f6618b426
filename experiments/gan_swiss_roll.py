"""Non-saturating GAN with R1 on the 2-D swiss roll (no modes: judge it by the plots)."""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.data.name = 'swiss_roll'
  c.penalty.update(name='r1', weight=0.1)
  c.eval.metrics = ()
  c.train.steps = 10_000
  return c
