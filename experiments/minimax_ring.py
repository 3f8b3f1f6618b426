"""The saturating (minimax) generator loss, log(1 - D(G(z))), on the ring.

Goodfellow et al. 2014 (arXiv:1406.2661), eq. 1: when D rejects the fakes early in training, the
generator's gradient vanishes (compare g_grad_norm in metrics.jsonl with gan_ring.py).
"""
from gan_jax import configs


def get_config():
  c = configs.toy_config()
  c.objective.name = 'minimax'
  return c
