"""MMD objectives (GMMN, MMD-GAN) and EBGAN's pulling-away term: the pure statistics against NumPy
double loops, the objective's two halves, the 'identity' discriminator and `embedding` outputs
in the models and in a GAN step, and the autoencoder discriminators' sown codes."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import gan, image_models, losses, models, steps, toy_data
from gan_jax.metrics import two_sample
from test_tricks import tiny as tricks_tiny  # tests/ is on sys.path

B = 8


def np_mmd2(x, y, bandwidths):
  """The unbiased MMD² by its definition, one kernel evaluation at a time (float64)."""
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  y = np.asarray(y, np.float64).reshape(len(y), -1)
  k = lambda a, b: sum(np.exp(-np.sum((a - b) ** 2) / (2 * s ** 2)) for s in bandwidths)
  n, m = len(x), len(y)
  xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
  return xx + yy - 2 * xy


def np_pulling_away(s):
  s = np.asarray(s, np.float64).reshape(len(s), -1)
  n = len(s)
  total = sum((s[i] @ s[j] / (np.linalg.norm(s[i]) * np.linalg.norm(s[j]))) ** 2
              for i in range(n) for j in range(n) if i != j)
  return total / (n * (n - 1))


def tiny(**changes):
  """test_tricks' small ring config under the mmd objective (bandwidths 0.1, 1) and 2 steps a call."""
  return tricks_tiny(**{'objective': {'name': 'mmd', 'bandwidths': (0.1, 1.0)},
                        'train.steps_per_call': 2, **changes})


def shapes(tree):
  return jax.tree.map(lambda a: a.shape, tree)


# --- MMD² ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('bandwidths', [(1.0,), (0.5, 2.0), losses.MMD_BANDWIDTHS])
def test_mmd2_matches_a_numpy_double_loop(bandwidths):
  kx, ky = jax.random.split(jax.random.key(0))
  x = jax.random.normal(kx, (6, 3, 2))  # trailing dims are flattened
  y = 0.7 * jax.random.normal(ky, (5, 3, 2)) + 0.3
  got = jax.jit(losses.mmd2, static_argnums=2)(x, y, bandwidths)
  chex.assert_shape(got, ())
  np.testing.assert_allclose(got, np_mmd2(x, y, bandwidths), rtol=1e-4, atol=1e-6)


def test_mmd2_with_one_bandwidth_is_the_two_sample_tests_statistic():
  kx, ky = jax.random.split(jax.random.key(1))
  x, y = jax.random.normal(kx, (20, 2)), jax.random.normal(ky, (30, 2)) + 0.5
  reference = two_sample.mmd2(x, y, bandwidth=0.8, num_permutations=1)['mmd2']
  np.testing.assert_allclose(losses.mmd2(x, y, (0.8,)), reference, rtol=1e-4, atol=1e-6)


def test_mmd2_is_near_zero_for_one_distribution_and_grows_with_a_shift():
  kx, ky = jax.random.split(jax.random.key(2))
  x, y = jax.random.normal(kx, (256, 2)), jax.random.normal(ky, (256, 2))
  same = float(losses.mmd2(x, y))
  shifted = [float(losses.mmd2(x, y + d)) for d in (0.5, 1.0, 2.0)]
  assert abs(same) < 0.02, same
  assert 0.05 < shifted[0] < shifted[1] < shifted[2], shifted


def test_mmd2_refuses_mismatched_batches():
  with pytest.raises(ValueError, match='mmd2 needs batches'):
    losses.mmd2(jnp.zeros((4, 2)), jnp.zeros((4, 3)))
  with pytest.raises(ValueError, match='mmd2 needs batches'):
    losses.mmd2(jnp.zeros((1, 2)), jnp.zeros((4, 2)))


def test_mmd2_has_finite_gradients_at_coincident_points():
  x = jnp.zeros((4, 2))  # ‖x - y‖² = 0 everywhere: the clipped distance must not give nan
  grads = jax.grad(lambda a: losses.mmd2(a, x + 1.0))(x)
  chex.assert_tree_all_finite(grads)


# --- the 'mmd' objective -------------------------------------------------------------------------

def test_mmd_objective_d_loss_is_minus_g_loss():
  obj = losses.get('mmd', bandwidths=(0.5, 2.0))
  assert obj.g_uses_real and 'mmd' in losses.OBJECTIVES
  kr, kf = jax.random.split(jax.random.key(3))
  real, fake = jax.random.normal(kr, (B, 4)), jax.random.normal(kf, (B, 4)) + 1.0
  d = jax.jit(obj.d_loss)(real, fake)
  g = jax.jit(lambda f, r: losses.g_value(obj, f, r))(fake, real)
  chex.assert_shape([d, g], [(), ()])
  np.testing.assert_allclose(d, -g, rtol=1e-6)
  np.testing.assert_allclose(g, np_mmd2(real, fake, (0.5, 2.0)), rtol=1e-4)
  assert float(g) > 0


def test_mmd_objective_defaults_and_bad_options():
  default = losses.get('mmd')
  x, y = jnp.ones((4, 2)), jnp.zeros((4, 2))
  np.testing.assert_allclose(default.g_loss(x, y), losses.mmd2(y, x, (1, 2, 4, 8, 16)))
  with pytest.raises(ValueError, match='bandwidths must be a non-empty tuple of numbers > 0'):
    losses.get('mmd', bandwidths=(1.0, 0.0))
  with pytest.raises(ValueError, match="objective 'mmd' takes options bandwidths"):
    losses.get('mmd', margin=1.0)


def test_the_objective_comes_from_the_config():
  c = tiny()
  gan_spec = steps.build_gan(c, (2,), toy_data.ring().sample)
  real, fake = jnp.zeros((4, 2)), jnp.ones((4, 2))
  np.testing.assert_allclose(gan_spec.objective.d_loss(real, fake),
                             -losses.mmd2(real, fake, (0.1, 1.0)), rtol=1e-6)


# --- the identity discriminator and embedding outputs -------------------------------------------

def test_identity_discriminator_returns_the_flattened_input_and_has_no_parameters():
  d = models.DISCRIMINATORS['identity']()
  x = jax.random.normal(jax.random.key(4), (B, 3, 2))
  variables = d.init(jax.random.key(0), x, None, train=False)
  assert variables == {'params': {}}
  out = d.apply(variables, x, None, train=True)
  np.testing.assert_array_equal(out, x.reshape(B, 6))
  np.testing.assert_array_equal(d.apply(variables, x), out)


@pytest.mark.parametrize('d_changes', [
    {'model.discriminator': 'identity', 'model.d': {}},           # GMMN
    {'model.d.embedding': 4},                                     # MMD-GAN
    {'model.d.embedding': 4, 'penalty.name': 'weight_clipping'},  # MMD-GAN, the experiment's
])
def test_the_gan_step_trains_with_vector_outputs(d_changes):
  exp = gan.GANExperiment(tiny(**d_changes), devices=jax.devices()[:1])
  state = exp.init_state()
  before = jax.device_get(state)
  state, metrics = exp.train_fn(2)(state, exp.loop_key)
  chex.assert_tree_all_finite(metrics)
  assert int(state.step) == 2
  assert any(not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(before.g.params), jax.tree.leaves(state.g.params)))
  if d_changes.get('model.discriminator') == 'identity':
    assert state.d.params == {} and float(metrics['d_grad_norm'][-1]) == 0.0


# The trees the discriminators had before `embedding` existed (pinned from that version).
MLP_TREE = {'params': {'Dense_0': {'bias': (1,), 'kernel': (8, 1)},
                       'MLP_0': {'Dense_0': {'bias': (8,), 'kernel': (2, 8)},
                                 'Dense_1': {'bias': (8,), 'kernel': (8, 8)}}}}
DCGAN_TREE = {'batch_stats': {'BatchNorm_0': {'mean': (16,), 'var': (16,)}},
              'params': {'BatchNorm_0': {'bias': (16,), 'scale': (16,)},
                         'StridedConv_0': {'bias': (8,), 'kernel': (4, 4, 1, 8)},
                         'StridedConv_1': {'bias': (16,), 'kernel': (4, 4, 8, 16)},
                         '_DiscriminatorHead_0': {'Dense_0': {'bias': (1,),
                                                              'kernel': (784, 1)}}}}
D_CASES = {  # name: (module, input shape, the pinned tree, the last Dense's path)
    'mlp': (lambda **kw: models.MLPDiscriminator(hidden=(8, 8), **kw), (B, 2), MLP_TREE,
            ('params', 'Dense_0', 'kernel')),
    'dcgan': (lambda **kw: image_models.DCGANDiscriminator(channels=8, **kw), (B, 28, 28, 1),
              DCGAN_TREE, ('params', '_DiscriminatorHead_0', 'Dense_0', 'kernel')),
    'resnet': (lambda **kw: image_models.ResNetDiscriminator(channels=8, **kw), (B, 32, 32, 3),
               None, ('params', '_DiscriminatorHead_0', 'Dense_0', 'kernel')),
}


def _at(tree, path):
  for key in path:
    tree = tree[key]
  return tree


@pytest.mark.parametrize('name', sorted(D_CASES))
def test_embedding_zero_is_the_discriminator_as_before(name):
  make, shape, pinned, _ = D_CASES[name]
  x = jax.random.normal(jax.random.key(5), shape)
  default = make().init(jax.random.key(1), x, train=False)
  zero = make(embedding=0).init(jax.random.key(1), x, train=False)
  assert jax.tree.structure(zero) == jax.tree.structure(default)
  chex.assert_trees_all_equal(zero, default)
  if pinned is not None:
    assert shapes(zero) == pinned
  out = make(embedding=0).apply(zero, x, train=False)
  chex.assert_shape(out, (B,))
  chex.assert_trees_all_equal(out, make().apply(default, x, train=False))


@pytest.mark.parametrize('name', sorted(D_CASES))
def test_embedding_k_gives_k_outputs_per_example(name):
  make, shape, _, last = D_CASES[name]
  x = jax.random.normal(jax.random.key(5), shape)
  default = make().init(jax.random.key(1), x, train=False)
  variables = make(embedding=5).init(jax.random.key(1), x, train=False)
  assert jax.tree.structure(variables) == jax.tree.structure(default)  # same names
  assert _at(variables, last).shape == _at(default, last).shape[:-1] + (5,)
  out, _ = make(embedding=5).apply(variables, x, train=True, mutable=['batch_stats'])
  chex.assert_shape(out, (B, 5))
  chex.assert_tree_all_finite(out)


@pytest.mark.parametrize('conditioning', ['concat', 'projection', 'acgan'])
def test_embedding_refuses_conditioning(conditioning):
  d = image_models.DCGANDiscriminator(channels=8, embedding=4, conditioning=conditioning,
                                      num_classes=3)
  with pytest.raises(ValueError, match=f"embedding=4 .*conditioning='{conditioning}'"):
    d.init(jax.random.key(0), jnp.zeros((2, 28, 28, 1)), jnp.zeros((2,), jnp.int32))


def test_embedding_must_be_a_count():
  with pytest.raises(ValueError, match='embedding=-1 must be an integer >= 0'):
    models.MLPDiscriminator(embedding=-1).init(jax.random.key(0), jnp.zeros((2, 2)))


# --- EBGAN's pulling-away term -------------------------------------------------------------------

def test_pulling_away_matches_a_numpy_double_loop():
  s = jax.random.normal(jax.random.key(6), (5, 3, 2))
  got = jax.jit(losses.pulling_away)(s)
  chex.assert_shape(got, ())
  np.testing.assert_allclose(got, np_pulling_away(s), rtol=1e-5)


def test_pulling_away_is_zero_for_orthogonal_rows_and_one_for_identical_rows():
  orthogonal = jnp.eye(4) * jnp.array([1.0, 2.0, 3.0, 4.0])[:, None]
  np.testing.assert_allclose(losses.pulling_away(orthogonal), 0.0, atol=1e-7)
  row = jnp.array([[0.3, -1.2, 2.0]])
  np.testing.assert_allclose(losses.pulling_away(jnp.tile(row, (6, 1))), 1.0, rtol=1e-6)
  parallel = row * jnp.array([[1.0], [-2.0], [0.5]])  # cos² = 1 for opposite directions too
  np.testing.assert_allclose(losses.pulling_away(parallel), 1.0, rtol=1e-6)


def test_pulling_away_handles_zero_rows_and_refuses_one_row():
  s = jnp.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
  np.testing.assert_allclose(losses.pulling_away(s), 2 / 6, rtol=1e-6)
  chex.assert_tree_all_finite(jax.grad(losses.pulling_away)(s))
  with pytest.raises(ValueError, match='pulling_away needs N >= 2'):
    losses.pulling_away(jnp.ones((1, 3)))


# --- the autoencoders' codes ---------------------------------------------------------------------

@pytest.mark.parametrize('d,shape,code_shape', [
    (models.MLPAutoencoderDiscriminator(hidden=(8,), code_dim=3), (B, 2), (B, 3)),
    (image_models.DCGANAutoencoderDiscriminator(channels=8), (B, 28, 28, 1), (B, 7, 7, 16)),
])
def test_autoencoders_sow_their_code(d, shape, code_shape):
  x = jax.random.normal(jax.random.key(7), shape)
  variables = d.init(jax.random.key(0), x, train=False)
  assert 'intermediates' not in variables
  energy, collected = d.apply(variables, x, mutable=['intermediates'])
  (code,) = jax.tree.leaves(collected['intermediates'])
  chex.assert_shape(code, code_shape)
  chex.assert_trees_all_equal(energy, d.apply(variables, x))  # the output is unchanged
  chex.assert_shape(energy, (B,))
  chex.assert_tree_all_finite(losses.pulling_away(code))


def test_run_d_collects_the_dcgan_autoencoder_code():
  assert 'dcgan_autoencoder' in models.FEATURE_DISCRIMINATORS
  c = tiny(**{'model.discriminator': 'dcgan_autoencoder', 'model.d': {'channels': 8},
              'model.generator': 'dcgan', 'model.g': {'channels': 8},
              'objective': {'name': 'ebgan'}, 'tricks.feature_matching.mode': 'auxiliary'})
  spec = steps.build_gan(c, (28, 28, 1))  # feature matching accepts it: it sows its code
  state = steps.create_state(spec, jax.random.key(0))
  x = jnp.zeros((B, 28, 28, 1))
  out, _, _, feats = steps.run_d(spec, state.d.params, state.d.batch_stats, x, None, True,
                                 features=True)
  chex.assert_shape(out, (B,))
  assert [f.shape for f in feats] == [(B, 7, 7, 16)]
  assert steps.run_d(spec, state.d.params, state.d.batch_stats, x, None, True)[3] == []
