"""Non-saturating GAN with R1 on the 2-D swiss roll: no modes, so judged by the plots and by
sample metrics on the raw 2-D points (Fréchet distance, PR/DC, MMD and C2ST against fresh draws)."""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.data.name = 'swiss_roll'
  c.penalty.update(name='r1', weight=0.1)
  c.eval.metrics = ('fid', 'precision_recall', 'density_coverage', 'mmd', 'c2st')
  c.train.steps = 10_000
  return c
