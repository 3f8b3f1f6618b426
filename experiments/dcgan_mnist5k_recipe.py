"""The digits recipe: a DCGAN on mnist5k's 4,500 training digits within 15 minutes of a 2-core
CPU (compile and evals included), the base of benchmarks/digits.py's ablation and limited-data
tables.

Radford et al. 2016, "Unsupervised Representation Learning with Deep Convolutional GANs"
(arXiv:1511.06434): BatchNorm in G and D, the non-saturating loss, Adam 2e-4 with β1 = 0.5, 64
base channels (dcgan_mnist.py has 32 and 3,000 iterations). The EMA of G (Yazıcı et al. 2019,
arXiv:1806.04498) starts after 1,000 iterations (before, it is G itself: no average over noise)
and samples with standing BatchNorm statistics recomputed for its own parameters (Brock et al.
2019, arXiv:1809.11096). Every switch of the limited-data toolkit (DiffAugment, ADA, LeCam, bCR,
zCR, top-k, ...) is off here: benchmarks/digits.py turns them on one at a time.
"""
from gan_jax import configs


def get_config():
  c = configs.image_config('mnist5k', 28)
  c.optim.update(ema_start=1_000, ema_standing_stats=20)
  c.train.update(steps=6_000, eval_every=2_000, checkpoint_every=1_000)
  # The four numbers: FID, precision / recall, and a two-sample classifier's accuracy.
  c.eval.metrics = ('fid', 'kid', 'inception_score', 'precision_recall', 'density_coverage',
                    'c2st')
  return c
