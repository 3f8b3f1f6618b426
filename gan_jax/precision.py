"""Mixed precision (config.train.dtype), in one place: every network call of every task's steps
goes through `apply`.

Parameters, optimizer state and BatchNorm statistics stay float32; each network call casts its
parameters and inputs to the compute dtype and its outputs back to float32, so every loss,
penalty and update is computed in float32 and gradients reach the float32 parameters through
the casts (Micikevicius et al. 2018, "Mixed Precision Training", arXiv:1710.03740; bfloat16 has
float32's exponent range, so no loss scaling).
"""
import jax
import jax.numpy as jnp

from gan_jax import configs

COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def compute_dtype(config):
  """The dtype of config.train.dtype ('float32' when absent); a bad name is a ConfigError."""
  return configs.lookup(COMPUTE_DTYPES, 'train.dtype', config.train.get('dtype', 'float32'))


def cast_floats(tree, dtype):
  """Every floating-point leaf of `tree` as `dtype`; other leaves as they are."""
  return jax.tree.map(
      lambda x: x.astype(dtype) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else x, tree)


def _compute_stats(batch_stats, dtype):
  """The statistics a network reads in `dtype`, except BatchNorm's running mean and variance:
  they stay float32, since flax updates them in float32 (m·old + (1 - m)·batch) and a bfloat16
  copy would round the old value at every step. Spectral norm's u and σ are cast, so W/σ(W)
  keeps the compute dtype."""
  def cast(path, x):
    name = getattr(path[-1], 'key', None)
    return x if name in ('mean', 'var') else x.astype(dtype)
  return jax.tree_util.tree_map_with_path(cast, batch_stats)


def _stored_like(new, old):
  """Updated statistics back in the dtypes they are stored in."""
  return jax.tree.map(lambda n, o: n.astype(o.dtype), new, old)


def _compute_inputs(params, batch_stats, x, dtype):
  """(variables, x) of a network call computing in `dtype`."""
  if dtype == jnp.float32:
    variables = {'params': params}
  else:
    variables, x = {'params': cast_floats(params, dtype)}, cast_floats(x, dtype)
  if batch_stats:
    variables['batch_stats'] = (batch_stats if dtype == jnp.float32 else
                                _compute_stats(batch_stats, dtype))
  return variables, x


def apply(module, params, batch_stats, x, extra, train: bool, dtype=jnp.float32, collect=(),
          rngs=None, **kwargs):
  """`module.apply` on (x, extra, train=train, **kwargs) computing in `dtype`.

  `extra` is the module's second argument (class labels, or pix2pix's dropout key); `rngs` the
  flax rng streams the module draws from (StyleGAN2's 'noise' and 'mixing'), or None. Returns
  (float32 output, batch_stats, {collection: float32 values}): the statistics (BatchNorm's,
  spectral norm's power-iteration vectors) updated when training, and the collections named in
  `collect` (e.g. 'intermediates', the features D sows).
  """
  variables, x = _compute_inputs(params, batch_stats, x, dtype)
  mutable = (['batch_stats'] if batch_stats and train else []) + list(collect)
  if mutable:
    out, updates = module.apply(variables, x, extra, train=train, mutable=mutable, rngs=rngs,
                                **kwargs)
  else:
    out, updates = module.apply(variables, x, extra, train=train, rngs=rngs, **kwargs), {}
  stats = (_stored_like(updates['batch_stats'], batch_stats) if 'batch_stats' in updates
           else batch_stats)
  collected = {k: cast_floats(v, jnp.float32) for k, v in updates.items() if k != 'batch_stats'}
  return cast_floats(out, jnp.float32), stats, collected
