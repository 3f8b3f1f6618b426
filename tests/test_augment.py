"""DiffAugment and ADA against numpy and scipy references and their defining properties.

DiffAugment: the drawn shifts, cutout squares and colour factors are read back from the output
(each output must match the reference formula for exactly one admissible draw), and their
distributions checked. ADA: the resampler against scipy and exact blits, the matrices' draws read
back from their structure (determinants, singular values, the luma axis), the probability of
each transformation through the share of samples left untouched, and the p update step by step.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from gan_jax import augment

KEY = jax.random.key(0)
# Jitted once for the whole file (eager dispatch of these many small ops is slow on CPU).
ada_augment = jax.jit(augment.ada_augment)
geometric_matrix = jax.jit(augment.ada_geometric_matrix, static_argnums=(1, 2, 3))
color_matrix = jax.jit(augment.ada_color_matrix, static_argnums=1)
diffaugment = jax.jit(augment.diffaugment, static_argnums=2)
affine_resample = jax.jit(augment.affine_resample)


def _images(shape, seed=0):
  return jnp.asarray(np.random.RandomState(seed).uniform(-1, 1, shape).astype(np.float32))


def _np_shift(x, dy, dx):
  """numpy reference for a batch NHWC: out[:, i, j] = x[:, i - dy, j - dx], zeros elsewhere."""
  h, w = x.shape[1:3]
  out = np.zeros_like(x)
  out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = (
      x[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)])
  return out


def _read_shifts(x, out, search):
  """The (dy, dx) per sample for which out == _np_shift(x, dy, dx), searched in [-search, search]²;
  asserts that exactly one matches."""
  shifts = np.zeros((x.shape[0], 2), int)
  matches = np.zeros(x.shape[0], int)
  for dy in range(-search, search + 1):
    for dx in range(-search, search + 1):
      same = np.all(out == _np_shift(x, dy, dx), axis=(1, 2, 3))
      matches += same
      shifts[same] = dy, dx
  assert np.all(matches == 1), np.bincount(matches)
  return shifts


# DiffAugment.


def test_translation_shifts_by_whole_pixels_with_zeros_uniform_in_range():
  # Distinct nonzero pixel values: each output matches the zero-filled shift of one (dy, dx).
  n = 2000
  x = np.arange(1, n * 16 * 16 + 1, dtype=np.float32).reshape(n, 16, 16, 1)
  out = np.asarray(augment.rand_translation(KEY, jnp.asarray(x)))
  shifts = _read_shifts(x, out, search=3)
  assert shifts.min() == -2 and shifts.max() == 2  # round(16 / 8) = 2, never 3
  # Uniform over the 25 (dy, dx) pairs: 80 expected per pair, std ≈ 8.8.
  counts = np.zeros((5, 5), int)
  np.add.at(counts, (shifts[:, 0] + 2, shifts[:, 1] + 2), 1)
  assert counts.min() > 45 and counts.max() < 115, counts


def test_translation_range_is_per_axis():
  n = 300
  x = np.arange(1, n * 8 * 16 * 2 + 1, dtype=np.float32).reshape(n, 8, 16, 2)
  out = np.asarray(jax.jit(augment.rand_translation)(KEY, jnp.asarray(x)))
  shifts = _read_shifts(x, out, search=3)
  assert set(shifts[:, 0]) == {-1, 0, 1}          # round(8 / 8)
  assert set(shifts[:, 1]) == {-2, -1, 0, 1, 2}   # round(16 / 8)


def _read_cutouts(out, side):
  """Per sample: the zeroed set must be the square [top, top + side) x [left, left + side) clipped
  to the image, the same in every channel; returns (top, left) and the zeroed area."""
  n, h, w, _ = out.shape
  zero = out == 0
  assert np.all(zero == zero[..., :1])
  zero = zero[..., 0]
  corners, areas = [], []
  for z in zero:
    rows, cols = np.nonzero(z.any(1))[0], np.nonzero(z.any(0))[0]
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    top = r0 if r0 > 0 else r1 - side
    left = c0 if c0 > 0 else c1 - side
    square = np.zeros((h, w), bool)
    square[max(top, 0):top + side, max(left, 0):left + side] = True
    np.testing.assert_array_equal(z, square)
    corners.append((top, left))
    areas.append(z.sum())
  return np.array(corners), np.array(areas)


def _mean_clipped_extent(size, side):
  """E[|[c - side//2, c - side//2 + side) ∩ [0, size)|] for the centre c uniform over the
  reference's range 0 .. size - side % 2."""
  starts = np.arange(size + 1 - side % 2) - side // 2
  return np.mean(np.minimum(starts + side, size) - np.maximum(starts, 0))


def test_cutout_zeroes_a_half_size_square_per_sample():
  n = 2000
  out = np.asarray(augment.rand_cutout(KEY, jnp.ones((n, 16, 16, 2))))
  corners, areas = _read_cutouts(out, side=8)
  assert corners.min() == -4 and corners.max() == 12   # the square's centre covers the image
  inside = np.all((corners >= 0) & (corners <= 8), axis=1)
  np.testing.assert_array_equal(areas[inside], 64)     # a quarter of the image, exactly
  assert np.all(areas >= 16)                           # clipped to at least half a side each way
  # 17 top rows, uniformly (118 expected each, std ≈ 10.6).
  counts = np.bincount(corners[:, 0] + 4)
  assert len(counts) == 17 and counts.min() > 75 and counts.max() < 160, counts
  np.testing.assert_allclose(areas.mean() / 256, _mean_clipped_extent(16, 8) ** 2 / 256,
                             rtol=0.04)


def test_cutout_odd_side_and_untouched_pixels():
  n = 400
  x = _images((n, 10, 10, 3))
  mask = np.asarray(augment.rand_cutout(KEY, jnp.ones_like(x))) != 0
  out = np.asarray(augment.rand_cutout(KEY, x))
  np.testing.assert_array_equal(out, np.where(mask, x, 0))  # elsewhere x, bit for bit
  corners, areas = _read_cutouts(np.where(mask, 1.0, 0.0), side=5)
  assert corners.min() == -2 and corners.max() == 7
  np.testing.assert_allclose(areas.mean(), _mean_clipped_extent(10, 5) ** 2, rtol=0.06)


def test_color_is_brightness_saturation_contrast():
  # Brightness b, then saturation s, then contrast c give, with m(x) the per-pixel channel mean
  # and M(x) the image mean: out - M(x) = c·s·(x - m(x)) + c·(m(x) - M(x)) + b. Fit (cs, c, b)
  # per sample by least squares; the fit must be exact and the factors in their ranges.
  n = 512
  x = np.asarray(_images((n, 4, 4, 3)))
  out = np.asarray(augment.color(KEY, jnp.asarray(x)), np.float64)
  m = x.mean(-1, keepdims=True)
  big_m = x.mean((1, 2, 3), keepdims=True)
  basis = np.stack([x - m, np.broadcast_to(m - big_m, x.shape), np.ones_like(x)], -1)
  basis = basis.reshape(n, -1, 3)
  target = (out - big_m).reshape(n, -1)
  coef = np.stack([np.linalg.lstsq(a, t, rcond=None)[0] for a, t in zip(basis, target)])
  cs, c, b = coef.T
  np.testing.assert_allclose(np.einsum('npk,nk->np', basis, coef), target, atol=1e-5)
  s = cs / c
  assert b.min() >= -0.5 and b.max() <= 0.5 and c.min() >= 0.5 and c.max() <= 1.5
  assert s.min() >= 0 and s.max() <= 2
  # Uniform: means and standard deviations of U(-0.5, 0.5), U(0.5, 1.5), U(0, 2).
  np.testing.assert_allclose([b.mean(), c.mean(), s.mean()], [0, 1, 1], atol=0.08)
  np.testing.assert_allclose([b.std(), c.std(), s.std()], [12 ** -0.5, 12 ** -0.5, 3 ** -0.5],
                             rtol=0.1)


def test_color_parts_keep_what_they_should():
  x = _images((8, 4, 4, 3))
  bright = augment.rand_brightness(KEY, x) - x   # a constant per sample
  np.testing.assert_allclose(bright, jnp.broadcast_to(bright[:, :1, :1, :1], x.shape), atol=1e-6)
  assert float(jnp.std(bright[:, 0, 0, 0])) > 0.05
  sat = augment.rand_saturation(KEY, x)          # keeps each pixel's channel mean
  np.testing.assert_allclose(sat.mean(-1), x.mean(-1), atol=1e-6)
  con = augment.rand_contrast(KEY, x)            # keeps each image's mean
  np.testing.assert_allclose(con.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-6)
  assert not np.allclose(sat, x) and not np.allclose(con, x)


ALL_POLICIES = sorted(augment.DIFFAUGMENT_POLICIES) + [','.join(augment.DIFFAUGMENT_POLICIES)]


def test_registry_and_policy_errors():
  assert set(augment.DIFFAUGMENT_POLICIES) == {'color', 'translation', 'cutout'}
  x = _images((4, 8, 8, 3))
  assert augment.diffaugment(KEY, x, '') is x
  np.testing.assert_array_equal(augment.diffaugment(KEY, x, ' color , cutout '),
                                augment.diffaugment(KEY, x, 'color,cutout'))
  with pytest.raises(ValueError, match=r"'colour'.*color, cutout, translation"):
    augment.diffaugment(KEY, x, 'translation,colour')


@pytest.mark.parametrize('policy', ALL_POLICIES)
def test_diffaugment_keys_samples_and_jit(policy):
  x = jnp.broadcast_to(_images((1, 16, 16, 3)), (8, 16, 16, 3))  # the same image 8 times
  out = diffaugment(KEY, x, policy)
  np.testing.assert_array_equal(out, diffaugment(KEY, x, policy))
  assert not np.allclose(out, diffaugment(jax.random.key(1), x, policy))
  # Independent draws per sample: 8 draws among 25 shifts or 289 squares repeat some (6.9
  # distinct expected for the shifts), one draw for the batch would give 1.
  assert len({row.tobytes() for row in np.asarray(out).reshape(8, -1)}) >= 5


@pytest.mark.parametrize('policy', ALL_POLICIES)
def test_diffaugment_gradients_reach_the_images(policy):
  x = _images((4, 8, 8, 3))
  grad = jax.jit(jax.grad(lambda x: jnp.sum(diffaugment(KEY, x, policy) ** 2)))(x)
  assert np.all(np.isfinite(grad)) and float(jnp.max(jnp.abs(grad))) > 0
  if policy == 'cutout':  # out = mask · x, so the gradient of Σ out² is 2 · out
    np.testing.assert_allclose(grad, 2 * diffaugment(KEY, x, policy), atol=1e-6)


# ADA: resampling and colour application.


def _np_translate(tx, ty):
  return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], np.float32)


def test_resample_blits_are_exact():
  x = _images((3, 8, 8, 2))
  eye = np.eye(3, dtype=np.float32)
  np.testing.assert_array_equal(affine_resample(x, np.stack([eye] * 3)), x)
  flip = np.diag([-1.0, 1.0, 1.0]).astype(np.float32)
  np.testing.assert_array_equal(affine_resample(x, np.stack([flip] * 3)), x[:, :, ::-1])
  quarter = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], np.float32)
  np.testing.assert_array_equal(affine_resample(x, np.stack([quarter] * 3)),
                                np.rot90(x, 1, axes=(1, 2)))
  # Integer translations, as far as 11 pixels: reflect padding (edge pixel not repeated).
  for tx, ty in [(2, -1), (-3, 3), (11, -9)]:
    out = np.asarray(affine_resample(x, np.stack([_np_translate(-tx, -ty)] * 3)))
    padded = np.pad(np.asarray(x), ((0, 0), (12, 12), (12, 12), (0, 0)), mode='reflect')
    np.testing.assert_array_equal(out, padded[:, 12 - ty:20 - ty, 12 - tx:20 - tx])
    if max(abs(tx), abs(ty)) >= 8:
      continue
    # Away from the borders it is the blit (zero-filled) shift.
    inner = np.s_[:, max(ty, 0):8 + min(ty, 0), max(tx, 0):8 + min(tx, 0)]
    np.testing.assert_array_equal(out[inner], _np_shift(np.asarray(x), ty, tx)[inner])


def test_resample_matches_scipy_bilinear_mirror():
  n, h, w = 16, 8, 12
  x = np.asarray(_images((n, h, w, 2)))
  g_inv = np.asarray(geometric_matrix(KEY, n, h, w, 1.0))
  out = np.asarray(affine_resample(jnp.asarray(x), g_inv))
  ys, xs = np.meshgrid(np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing='ij')
  for i in range(n):
    grid = np.stack([xs, ys, np.ones_like(xs)])
    src = np.einsum('ij,jhw->ihw', g_inv[i].astype(np.float64), grid)
    coords = [src[1] + (h - 1) / 2, src[0] + (w - 1) / 2]
    for ch in range(2):
      ref = scipy.ndimage.map_coordinates(x[i, ..., ch].astype(np.float64), coords, order=1,
                                          mode='mirror')
      np.testing.assert_allclose(out[i, ..., ch], ref, atol=2e-5)


def test_apply_color_matrix_matches_numpy():
  rng = np.random.RandomState(1)
  c = rng.normal(size=(4, 4, 4)).astype(np.float32)
  x = _images((4, 3, 5, 3))
  want = np.einsum('nij,nhwj->nhwi', c[:, :3, :3], x) + c[:, None, None, :3, 3]
  np.testing.assert_allclose(augment.apply_color_matrix(x, c), want, atol=1e-5)
  grey = x[..., :1]
  gain, offset = c[:, :3, :3].sum(2).mean(1), c[:, :3, 3].mean(1)
  want = grey * gain[:, None, None, None] + offset[:, None, None, None]
  np.testing.assert_allclose(augment.apply_color_matrix(grey, c), want, atol=1e-5)
  with pytest.raises(ValueError, match='1 or 3 channels'):
    augment.apply_color_matrix(x[..., :2], c)


# ADA: the matrices' draws.


N_DRAWS = 8192  # samples for the statistics of the matrices' draws


def test_geometric_matrix_draws():
  n = N_DRAWS
  assert np.all(np.asarray(geometric_matrix(KEY, n, 16, 16, 0.0)) == np.eye(3))
  g = np.asarray(geometric_matrix(KEY, n, 16, 16, 1.0), np.float64)
  np.testing.assert_array_equal(g[:, 2], np.broadcast_to([0, 0, 1], (n, 3)))
  assert len(np.unique(g.reshape(n, -1), axis=0)) == n
  # det G⁻¹ = ±1/s² (the x-flip is the sign; rotations and anisotropy keep areas), s the
  # isotropic scale: log2 s ~ N(0, 0.2²), so log2|det| ~ N(0, 0.4²); the flip happens with p/2.
  det = np.linalg.det(g[:, :2, :2])
  np.testing.assert_allclose(np.mean(det < 0), 0.5, atol=0.03)
  np.testing.assert_allclose(np.std(np.log2(np.abs(det))), 0.4, rtol=0.05)
  np.testing.assert_allclose(np.mean(np.log2(np.abs(det))), 0.0, atol=0.02)
  # The singular values' ratio is the anisotropy a², log2 a ~ N(0, 0.2²): E|log2 a| =
  # 0.2√(2/π).
  sv = np.linalg.svd(g[:, :2, :2], compute_uv=False)
  np.testing.assert_allclose(np.mean(np.log2(sv[:, 0] / sv[:, 1]) / 2), 0.2 * np.sqrt(2 / np.pi),
                             rtol=0.05)


def test_geometric_probability_per_transformation():
  # A sample is untouched when no transformation is drawn or the drawn one is the identity:
  # x-flip i = 0 (1/2), quarter turns i = 0 (1/4), integer shifts both round to 0 at 16 px
  # (1/4 each), none for the others; the two rotations have 1 - √(1 - p) each.
  n, p = N_DRAWS, 0.2
  g = np.asarray(geometric_matrix(KEY, n, 16, 16, p))
  untouched = np.mean(np.all(g == np.eye(3), axis=(1, 2)))
  want = (1 - p / 2) * (1 - 3 * p / 4) * (1 - p * 15 / 16) * (1 - p) ** 3 * (1 - p)
  np.testing.assert_allclose(untouched, want, atol=0.015)
  # Blits stay exact: a matrix within rounding of an integer one (flips, quarter turns, integer
  # shifts only) is that integer matrix exactly, so the resampling copies pixels.
  near = np.all(np.abs(g - np.round(g)) < 1e-6, axis=(1, 2))
  assert np.mean(near & ~np.all(g == np.eye(3), axis=(1, 2))) > 0.1
  np.testing.assert_array_equal(g[near], np.round(g[near]))
  assert set(g[near][:, :2, 2].ravel()) == {-2, -1, 0, 1, 2}  # round(±0.125 · 16) at most


def test_geometric_translations():
  # The forward map G = (G⁻¹)⁻¹ translates by t_frac + L·t_int, L the scaling and rotations:
  # E|t_frac|² = 2 (0.125 · 16)² = 8; round(U(-2, 2)) has variance 1.5 per axis and L scales
  # it by E[s²] · E[(a² + a⁻²)/2] = exp((0.4 ln 2)²/2)² on average.
  g = np.asarray(geometric_matrix(KEY, N_DRAWS, 16, 16, 1.0), np.float64)
  t = np.linalg.inv(g)[:, :2, 2]
  want = 8 + 3 * np.exp((0.4 * np.log(2)) ** 2 / 2) ** 2
  np.testing.assert_allclose(np.mean(np.sum(t ** 2, 1)), want, rtol=0.05)


def _rodrigues(axis, theta):
  k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
  return np.cos(theta) * np.eye(3) + np.sin(theta) * k + (1 - np.cos(theta)) * np.outer(axis, axis)


def _np_color_matrix(b, c, flip, theta, s):
  """numpy reference (Karras et al. 2020, App. B): saturation · hue · luma flip · contrast ·
  brightness, as 4x4 homogeneous matrices."""
  def h(linear, offset=np.zeros(3)):
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = linear, offset
    return m
  v = np.ones(3) / np.sqrt(3)
  vv = np.outer(v, v)
  return (h(vv + s * (np.eye(3) - vv)) @ h(_rodrigues(v, theta)) @ h(np.eye(3) - 2 * flip * vv) @
          h(c * np.eye(3)) @ h(np.eye(3), np.full(3, b)))


def _read_color_draws(cm):
  """(b, c, flip, θ, s) per sample, read back from colour matrices (n, 4, 4), after checking the
  structure the paper's composition gives them."""
  n = len(cm)
  np.testing.assert_allclose(cm[:, 3], np.broadcast_to([0, 0, 0, 1], (n, 4)), atol=0)
  lin, off = cm[:, :3, :3], cm[:, :3, 3]
  # Grey stays grey: on the luma axis C is x ↦ a·x + a·b, a = ±c (flip), b the brightness.
  gain = lin.sum(2)
  np.testing.assert_allclose(gain, gain[:, :1].repeat(3, 1), atol=1e-5)
  np.testing.assert_allclose(off, off[:, :1].repeat(3, 1), atol=1e-5)
  a = gain[:, 0]
  c, flip, b = np.abs(a), (a < 0).astype(float), off[:, 0] / a
  # On the chroma plane (basis e1, e2 with e1 × e2 = v) C is c·s·rotation(θ).
  e1 = np.array([1, -1, 0]) / np.sqrt(2)
  e2 = np.cross(np.ones(3) / np.sqrt(3), e1)
  basis = np.stack([e1, e2], 1)
  chroma = np.einsum('ki,nkl,lj->nij', basis, lin, basis)
  np.testing.assert_allclose(chroma[:, 0, 0], chroma[:, 1, 1], atol=1e-5)
  np.testing.assert_allclose(chroma[:, 0, 1], -chroma[:, 1, 0], atol=1e-5)
  s = np.hypot(chroma[:, 0, 0], chroma[:, 1, 0]) / c
  theta = np.arctan2(chroma[:, 1, 0], chroma[:, 0, 0])
  # And rebuilt from those draws by the numpy reference, C is the same matrix.
  want = np.stack([_np_color_matrix(*args) for args in zip(b, c, flip, theta, s)][:1000])
  np.testing.assert_allclose(cm[:1000], want, atol=2e-5)
  return b, c, flip, theta, s


def test_color_matrix_is_the_papers_composition():
  n = N_DRAWS
  assert np.all(np.asarray(color_matrix(KEY, n, 0.0)) == np.eye(4))
  b, c, flip, theta, s = _read_color_draws(np.asarray(color_matrix(KEY, n, 1.0), np.float64))
  # The reference constants: b ~ N(0, 0.2²), log2 c ~ N(0, 0.5²), i ~ U{0, 1}, θ ~ U(-π, π),
  # log2 s ~ N(0, 1).
  np.testing.assert_allclose([b.std(), np.log2(c).std(), np.log2(s).std()], [0.2, 0.5, 1.0],
                             rtol=0.05)
  np.testing.assert_allclose([flip.mean(), np.abs(theta).mean()], [0.5, np.pi / 2], rtol=0.05)
  assert theta.min() < -3.1 and theta.max() > 3.1


def test_color_probability_per_transformation():
  # Each transformation with probability p, independently: the share left at its identity.
  n, p = N_DRAWS, 0.2
  cm = np.asarray(color_matrix(KEY, n, p), np.float64)
  b, c, flip, theta, s = _read_color_draws(cm)
  off = [np.abs(b) < 1e-6, np.abs(c - 1) < 1e-5, flip == 0, np.abs(theta) < 1e-5,
         np.abs(s - 1) < 1e-5]
  np.testing.assert_allclose([np.mean(o) for o in off], [1 - p, 1 - p, 1 - p / 2, 1 - p, 1 - p],
                             atol=0.015)
  untouched = np.mean(np.all(cm == np.eye(4), axis=(1, 2)))
  np.testing.assert_allclose(untouched, np.mean(np.all(off, axis=0)), atol=0)
  np.testing.assert_allclose(untouched, (1 - p) ** 4 * (1 - p / 2), atol=0.015)


# ADA: the pipeline.


def test_ada_under_jit_with_traced_p_and_p_zero_bit_for_bit():
  x = _images((8, 8, 8, 3)).at[:, 0].set(-0.0)  # signed zeros too
  traces = []

  def f(key, x, p):
    traces.append(None)
    return augment.ada_augment(key, x, p)

  jitted = jax.jit(f)
  outs = [jitted(KEY, x, jnp.float32(p)) for p in (0.0, 0.3, 1.0)]
  assert len(traces) == 1                                  # one compilation for every p
  bits = np.asarray(x).tobytes()
  assert np.asarray(outs[0]).tobytes() == bits            # p = 0: the identity, bit for bit
  assert np.asarray(jitted(jax.random.key(3), x, jnp.float32(0.0))).tobytes() == bits
  assert not np.allclose(outs[1], x) and not np.allclose(outs[2], outs[1])


def test_ada_per_sample_draws_keys_and_grey():
  x = jnp.broadcast_to(_images((1, 8, 8, 3)), (8, 8, 8, 3))
  out = ada_augment(KEY, x, 1.0)
  np.testing.assert_array_equal(out, ada_augment(KEY, x, 1.0))
  assert not np.allclose(out, ada_augment(jax.random.key(1), x, 1.0))
  assert len({row.tobytes() for row in np.asarray(out).reshape(8, -1)}) == 8
  grey = jnp.repeat(x[..., :1], 3, axis=-1)   # colour matrices keep grey images grey
  out = np.asarray(ada_augment(KEY, grey, 1.0))
  np.testing.assert_allclose(out, out[..., :1].repeat(3, -1), atol=1e-5)
  assert ada_augment(KEY, x[..., :1], 1.0).shape == (8, 8, 8, 1)


def test_ada_is_colour_after_geometry():
  # x' = C · (resample(x, G⁻¹), 1), G⁻¹ and C drawn with the two halves of split(key).
  x = _images((8, 8, 8, 3))
  g_key, c_key = jax.random.split(KEY)
  moved = affine_resample(x, geometric_matrix(g_key, 8, 8, 8, 1.0))
  want = augment.apply_color_matrix(moved, color_matrix(c_key, 8, 1.0))
  np.testing.assert_allclose(ada_augment(KEY, x, 1.0), want, rtol=1e-5, atol=1e-5)


def test_ada_untouched_share_is_the_product_of_the_groups():
  n, p = 4096, 0.2
  x = _images((n, 16, 16, 3))
  out = ada_augment(KEY, x, p)
  untouched = np.mean(np.all(np.asarray(out) == np.asarray(x), axis=(1, 2, 3)))
  geometric = (1 - p / 2) * (1 - 3 * p / 4) * (1 - p * 15 / 16) * (1 - p) ** 4
  colour = (1 - p) ** 4 * (1 - p / 2)
  np.testing.assert_allclose(untouched, geometric * colour, atol=0.015)


def test_ada_gradients_reach_the_images():
  x = _images((8, 8, 8, 3))
  grad_fn = jax.jit(jax.grad(lambda x, p: jnp.sum(augment.ada_augment(KEY, x, p) ** 2)))
  np.testing.assert_array_equal(grad_fn(x, 0.0), 2 * x)
  for p in (0.5, 1.0):
    grad = grad_fn(x, p)
    assert np.all(np.isfinite(grad)) and float(jnp.min(jnp.sum(jnp.abs(grad), (1, 2, 3)))) > 0


# ADA: p.


def test_ada_update_steps_and_clips():
  step = 64 * 4 / 500_000
  update = lambda p, r: augment.ada_update(p, r, batch_size=64, interval=4)
  np.testing.assert_allclose(update(0.3, 0.8), 0.3 + step, rtol=1e-6)
  np.testing.assert_allclose(update(0.3, 0.1), 0.3 - step, rtol=1e-6)
  np.testing.assert_allclose(update(0.3, 0.6), 0.3, rtol=1e-6)       # sign(0) = 0
  assert float(update(1.0 - step / 2, 1.0)) == 1.0
  assert float(update(step / 2, -1.0)) == 0.0
  np.testing.assert_allclose(
      augment.ada_update(0.5, 0.95, target=0.9, batch_size=32, interval=2, speed_images=1000),
      0.5 + 0.064, rtol=1e-6)
  jitted = jax.jit(update)
  np.testing.assert_allclose(jitted(jnp.float32(0.3), jnp.float32(0.8)), 0.3 + step, rtol=1e-6)
  np.testing.assert_allclose(jitted(jnp.float32(0.3), jnp.float32(0.2)), 0.3 - step, rtol=1e-6)


def test_overfitting_heuristic():
  logits = jnp.array([[2.0], [-1.0], [3.0], [0.0]])
  np.testing.assert_allclose(augment.overfitting_heuristic(logits), 0.25)
  np.testing.assert_allclose(jax.jit(augment.overfitting_heuristic)(jnp.full((8,), 5.0)), 1.0)
