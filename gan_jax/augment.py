"""Differentiable augmentations of everything D sees, for GANs trained on little data.

Both families augment the reals and the fakes alike, in D's step and in G's, with transformations
that are differentiable in the images, so G's gradient flows back through them. Images are NHWC
floats in [-1, 1], the range the two reference implementations work in; their constants are used
unchanged. Every function is pure: the randomness comes from an explicit key, with independent
draws for each sample; shapes are static and every probability may be a traced scalar.

* DiffAugment (Zhao et al. 2020, arXiv:2006.10738): ``diffaugment(key, x, 'color,translation,
  cutout')`` applies the named policies of ``DIFFAUGMENT_POLICIES`` in order, to every sample.
* ADA (Karras et al. 2020, arXiv:2006.06676): ``ada_augment(key, x, p)`` is the 'bgc' pipeline
  (pixel blitting, general geometric, colour), each transformation applied with probability p
  per sample. p is tuned during training: every `interval` steps,
  ``p = ada_update(p, r_t, batch_size=..., interval=...)`` with ``r_t`` the mean over those steps
  of ``overfitting_heuristic(D(reals))``.
"""
import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

_HIGHEST = jax.lax.Precision.HIGHEST


def _per_sample(key, x, minval, maxval):
  """One U(minval, maxval) draw per sample, shaped to broadcast over an NHWC batch."""
  return jax.random.uniform(key, (x.shape[0], 1, 1, 1), x.dtype, minval, maxval)


# DiffAugment.


def rand_brightness(key, x):
  """x + b, b ~ U(-0.5, 0.5) per sample (DiffAugment's 'color', Zhao et al. 2020)."""
  return x + _per_sample(key, x, -0.5, 0.5)


def rand_saturation(key, x):
  """(x - m) · s + m, m the per-pixel mean over channels, s ~ U(0, 2) per sample (DiffAugment)."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  return (x - mean) * _per_sample(key, x, 0.0, 2.0) + mean


def rand_contrast(key, x):
  """(x - m) · c + m, m the per-image mean, c ~ U(0.5, 1.5) per sample (DiffAugment)."""
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) * _per_sample(key, x, 0.5, 1.5) + mean


def color(key, x):
  """DiffAugment's 'color' policy: brightness, then saturation, then contrast (Zhao et al. 2020)."""
  b_key, s_key, c_key = jax.random.split(key, 3)
  return rand_contrast(c_key, rand_saturation(s_key, rand_brightness(b_key, x)))


def _shift(image, d, axis):
  """`image` moved by the integer d along `axis` (out[i] = image[i - d]), zeros filled in."""
  n = image.shape[axis]
  source = jnp.arange(n) - d
  others = [a for a in range(image.ndim) if a != axis]
  inside = jnp.expand_dims((source >= 0) & (source < n), others)
  return jnp.where(inside, jnp.take(image, jnp.clip(source, 0, n - 1), axis=axis), 0)


def rand_translation(key, x, ratio: float = 0.125):
  """DiffAugment's 'translation': out[i, j] = x[i - dy, j - dx], zero outside the image.

  Zhao et al. 2020 (arXiv:2006.10738): dy, dx uniform integers in [-r, r] per sample and axis,
  r = round(ratio · size) (1/8 of the image size); the zeros are mid-grey in [-1, 1].
  """
  h, w = x.shape[1:3]
  rh, rw = int(h * ratio + 0.5), int(w * ratio + 0.5)
  y_key, x_key = jax.random.split(key)
  dy = jax.random.randint(y_key, (x.shape[0],), -rh, rh + 1)
  dx = jax.random.randint(x_key, (x.shape[0],), -rw, rw + 1)
  return jax.vmap(lambda image, dy, dx: _shift(_shift(image, dy, 0), dx, 1))(x, dy, dx)


def rand_cutout(key, x, ratio: float = 0.5):
  """DiffAugment's 'cutout': a square of side round(ratio · size) zeroed in each sample.

  Zhao et al. 2020 (arXiv:2006.10738), with the reference code's placement: the square's centre
  is a uniform pixel of the image (for an even side, also the edge one past the last), so near
  an edge the square is clipped, to no less than half its side.
  """
  n, h, w = x.shape[:3]
  ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
  y_key, x_key = jax.random.split(key)
  top = jax.random.randint(y_key, (n, 1), 0, h + 1 - ch % 2) - ch // 2
  left = jax.random.randint(x_key, (n, 1), 0, w + 1 - cw % 2) - cw // 2
  rows, cols = jnp.arange(h), jnp.arange(w)
  in_rows = (rows >= top) & (rows < top + ch)      # (n, h)
  in_cols = (cols >= left) & (cols < left + cw)    # (n, w)
  cut = in_rows[:, :, None, None] & in_cols[:, None, :, None]
  return jnp.where(cut, 0, x)


DIFFAUGMENT_POLICIES = {
    'color': color,
    'translation': rand_translation,
    'cutout': rand_cutout,
}


def diffaugment(key, x, policy: str):
  """DiffAugment T(x): the comma-separated policies (e.g. 'color,translation,cutout') in order.

  Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"
  (arXiv:2006.10738): D sees T(x) and T(G(z)) in both players' losses, T differentiable. Each
  policy gets its own key (fold_in of its position); '' is the identity.
  """
  names = [name.strip() for name in policy.split(',') if name.strip()]
  for name in names:
    if name not in DIFFAUGMENT_POLICIES:
      raise ValueError(f'unknown DiffAugment policy {name!r}; valid policies: '
                       f'{", ".join(sorted(DIFFAUGMENT_POLICIES))}')
  for i, name in enumerate(names):
    x = DIFFAUGMENT_POLICIES[name](jax.random.fold_in(key, i), x)
  return x


# ADA: matrices.


def _matrices(*rows):
  """Per-sample matrices (n, rows, columns) from rows of entries, each an (n,) array or a scalar."""
  entries = jnp.broadcast_arrays(*[jnp.asarray(e, jnp.float32) for row in rows for e in row])
  return jnp.stack(entries, -1).reshape(entries[0].shape + (len(rows), len(rows[0])))


def _translate(tx, ty):
  return _matrices([1, 0, tx], [0, 1, ty], [0, 0, 1])


def _scale(sx, sy):
  return _matrices([sx, 0, 0], [0, sy, 0], [0, 0, 1])


def _rotate(cos, sin):
  return _matrices([cos, -sin, 0], [sin, cos, 0], [0, 0, 1])


def _affine4(linear, offset):
  """Homogeneous 4x4 colour matrices [[linear, offset], [0, 1]] from (n, 3, 3) and (n, 3)."""
  top = jnp.concatenate([linear, offset[:, :, None]], axis=2)
  bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0]), (linear.shape[0], 1, 4))
  return jnp.concatenate([top, bottom], axis=1)


def _compose(*matrices):
  """The product m₁ m₂ … of per-sample matrices, in full float32 precision."""
  return functools.reduce(lambda a, b: jnp.matmul(a, b, precision=_HIGHEST), matrices)


def ada_geometric_matrix(key, n: int, height: int, width: int, p: ArrayLike) -> jax.Array:
  """ADA's blit and geometric transformations as one inverse matrix per sample, (n, 3, 3).

  Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data"
  (arXiv:2006.06676), App. B, groups 'b' and 'g'. G⁻¹ maps an output pixel (x, y, 1), in pixels
  from the image centre (x along the width), to the input point it samples. The image undergoes,
  in order, each with probability p per sample (constants of the reference code):
  x-flip (i ~ U{0, 1}); i·90° rotation (i ~ U{0..3}); integer translation round(t · size),
  t ~ U(-0.125, 0.125) per axis; isotropic scaling s ~ lognormal(0, (0.2 ln 2)²); rotation
  θ ~ U(-π, π); anisotropic scaling diag(s, 1/s), s ~ lognormal(0, (0.2 ln 2)²); rotation
  θ ~ U(-π, π); fractional translation t · size, t ~ N(0, 0.125²) per axis. The two rotations
  have probability 1 - √(1 - p) each, so that some rotation happens with probability p.
  """
  u_key, z_key, gate_key = jax.random.split(key, 3)
  u = jax.random.uniform(u_key, (6, n))
  z = jax.random.normal(z_key, (4, n))
  p = jnp.asarray(p, jnp.float32)
  p_rot = 1 - jnp.sqrt(jnp.clip(1 - p, 0, 1))
  on = jax.random.uniform(gate_key, (8, n)) < jnp.stack([p, p, p, p, p_rot, p, p_rot, p])[:, None]

  flip = jnp.where(on[0], jnp.floor(u[0] * 2), 0.0)
  quarter = jnp.where(on[1], jnp.floor(u[1] * 4), 0.0).astype(jnp.int32)
  x_int = jnp.where(on[2], jnp.round((u[2] * 2 - 1) * 0.125 * width), 0.0)
  y_int = jnp.where(on[2], jnp.round((u[3] * 2 - 1) * 0.125 * height), 0.0)
  iso = jnp.where(on[3], jnp.exp2(0.2 * z[0]), 1.0)
  pre = jnp.where(on[4], (u[4] * 2 - 1) * jnp.pi, 0.0)
  aniso = jnp.where(on[5], jnp.exp2(0.2 * z[1]), 1.0)
  post = jnp.where(on[6], (u[5] * 2 - 1) * jnp.pi, 0.0)
  x_frac = jnp.where(on[7], 0.125 * width * z[2], 0.0)
  y_frac = jnp.where(on[7], 0.125 * height * z[3], 0.0)
  # Quarter turns from a table rather than cos/sin, so that blits stay exact.
  cos90, sin90 = jnp.array([1.0, 0.0, -1.0, 0.0]), jnp.array([0.0, 1.0, 0.0, -1.0])
  return _compose(
      _scale(1 - 2 * flip, 1),                            # each factor is the inverse of the
      _rotate(cos90[quarter], -sin90[quarter]),           # step it undoes, first step first
      _translate(-x_int, -y_int),
      _scale(1 / iso, 1 / iso),
      _rotate(jnp.cos(pre), -jnp.sin(pre)),
      _scale(1 / aniso, aniso),
      _rotate(jnp.cos(post), -jnp.sin(post)),
      _translate(-x_frac, -y_frac))


def ada_color_matrix(key, n: int, p: ArrayLike) -> jax.Array:
  """ADA's colour transformations as one 4x4 matrix per sample, (n, 4, 4): rgb' = C · (rgb, 1).

  Karras et al. 2020 (arXiv:2006.06676), App. B, group 'c', each with probability p per sample
  (constants of the reference code, for images in [-1, 1]), applied in order: brightness
  x + b, b ~ N(0, 0.2²); contrast x · c, c ~ lognormal(0, (0.5 ln 2)²); luma flip
  (I - 2 v vᵀ i), i ~ U{0, 1}, v = (1, 1, 1)/√3 the luma axis; hue rotation about v by
  θ ~ U(-π, π); saturation v vᵀ + (I - v vᵀ) s, s ~ lognormal(0, (ln 2)²).
  """
  u_key, z_key, gate_key = jax.random.split(key, 3)
  u = jax.random.uniform(u_key, (2, n))
  z = jax.random.normal(z_key, (3, n))
  on = jax.random.uniform(gate_key, (5, n)) < p
  b = jnp.where(on[0], 0.2 * z[0], 0.0)
  c = jnp.where(on[1], jnp.exp2(0.5 * z[1]), 1.0)
  flip = jnp.where(on[2], jnp.floor(u[0] * 2), 0.0)
  theta = jnp.where(on[3], (u[1] * 2 - 1) * jnp.pi, 0.0)
  s = jnp.where(on[4], jnp.exp2(z[2]), 1.0)

  eye = jnp.eye(3)
  luma = jnp.full((3, 3), 1 / 3)  # v vᵀ
  cross = jnp.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]]) / jnp.sqrt(3.0)  # v×
  cos, sin = jnp.cos(theta)[:, None, None], jnp.sin(theta)[:, None, None]
  zero = jnp.zeros((n, 3))
  return _compose(
      _affine4(luma + s[:, None, None] * (eye - luma), zero),        # saturation
      _affine4(cos * eye + sin * cross + (1 - cos) * luma, zero),    # hue (Rodrigues)
      _affine4(eye - 2 * flip[:, None, None] * luma, zero),          # luma flip (Householder)
      _affine4(c[:, None, None] * eye, zero),                        # contrast
      _affine4(jnp.broadcast_to(eye, (n, 3, 3)), jnp.repeat(b[:, None], 3, axis=1)))  # brightness


# ADA: applying them.


def _reflect(u, n):
  """Coordinates folded into [0, n - 1] by mirroring about the edge pixels' centres (reflect
  padding: the edge pixel is not repeated), however far out they are."""
  if n == 1:
    return jnp.zeros_like(u)
  u = jnp.mod(u, 2 * (n - 1))
  return jnp.where(u > n - 1, 2 * (n - 1) - u, u)


def _bilinear(image, sy, sx):
  """image (H, W, C) sampled at the points (sy, sx) (each (H, W), within the image), bilinearly."""
  h, w = image.shape[:2]
  y0, x0 = jnp.floor(sy), jnp.floor(sx)
  fy, fx = (sy - y0)[..., None], (sx - x0)[..., None]
  y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
  y1, x1 = jnp.minimum(y0 + 1, h - 1), jnp.minimum(x0 + 1, w - 1)
  top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
  bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
  return top * (1 - fy) + bottom * fy


def affine_resample(x, g_inv):
  """out(q) = x(G⁻¹ q) per sample: bilinear resampling with reflect padding, differentiable in x.

  q = (x, y, 1) is an output pixel in pixels from the image centre, x along the width; g_inv is
  (n, 3, 3), e.g. from `ada_geometric_matrix`. The reference (Karras et al. 2020) also
  upsamples 2x with a wavelet filter around the resampling against aliasing; this does not.
  """
  n, h, w, _ = x.shape
  ys, xs = jnp.meshgrid(jnp.arange(h) - (h - 1) / 2, jnp.arange(w) - (w - 1) / 2, indexing='ij')
  grid = jnp.stack([xs, ys, jnp.ones_like(xs)], axis=-1)  # (h, w, 3)
  source = jnp.einsum('nij,hwj->nhwi', g_inv, grid, precision=_HIGHEST)
  sx = _reflect(source[..., 0] + (w - 1) / 2, w)
  sy = _reflect(source[..., 1] + (h - 1) / 2, h)
  return jax.vmap(_bilinear)(x, sy, sx).astype(x.dtype)


def apply_color_matrix(x, c):
  """rgb' = C[:3, :3] · rgb + C[:3, 3] per sample; for one channel, the reference's rule
  x' = x · mean_i Σ_j C_ij + mean_i C_i3 (i, j < 3). Karras et al. 2020 (arXiv:2006.06676)."""
  if x.shape[-1] == 3:
    out = (jnp.einsum('nij,nhwj->nhwi', c[:, :3, :3], x, precision=_HIGHEST) +
           c[:, None, None, :3, 3])
  elif x.shape[-1] == 1:
    gain = jnp.mean(jnp.sum(c[:, :3, :3], axis=2), axis=1)
    offset = jnp.mean(c[:, :3, 3], axis=1)
    out = x * gain[:, None, None, None] + offset[:, None, None, None]
  else:
    raise ValueError(f'ADA colour transformations need 1 or 3 channels, not {x.shape[-1]}')
  return out.astype(x.dtype)


def ada_augment(key, x, p: ArrayLike):
  """ADA's 'bgc' augmentation: blit and geometric transformations, then colour, each with
  probability p per sample.

  Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data"
  (arXiv:2006.06676), sec. 2 and App. B: x' = C · (resample(x, G⁻¹), 1), G⁻¹ from
  `ada_geometric_matrix` and C from `ada_color_matrix`, with the two keys of split(key). A sample
  whose matrix is the identity is passed through untouched, so p = 0 returns x exactly (signed
  zeros included). x: NHWC in [-1, 1], 1 or 3 channels.
  """
  n, h, w, _ = x.shape
  g_key, c_key = jax.random.split(key)
  g_inv = ada_geometric_matrix(g_key, n, h, w, p)
  moved = jnp.any(g_inv != jnp.eye(3), axis=(1, 2))[:, None, None, None]
  x = jnp.where(moved, affine_resample(x, g_inv), x)
  c = ada_color_matrix(c_key, n, p)
  recoloured = jnp.any(c != jnp.eye(4), axis=(1, 2))[:, None, None, None]
  return jnp.where(recoloured, apply_color_matrix(x, c), x)


# ADA: tuning p.


def overfitting_heuristic(real_logits: ArrayLike) -> jax.Array:
  """r_t = E[sign(D(x_real))], the ADA overfitting heuristic (Karras et al. 2020, eq. 1).

  0: D does not separate the reals from the fakes; 1: D is certain of every real (overfitting).
  """
  return jnp.mean(jnp.sign(real_logits))


def ada_update(p: ArrayLike, sign_mean: ArrayLike, *, target: float = 0.6, batch_size: int,
               interval: int, speed_images: int = 500_000) -> jax.Array:
  """p ← clip(p + sign(r_t - target) · batch_size · interval / speed_images, 0, 1).

  Karras et al. 2020 (arXiv:2006.06676), sec. 3: every `interval` minibatches (4 in the paper),
  r_t = `sign_mean`, the overfitting heuristic over those minibatches, moves p by a step that
  takes p from 0 to 1 in `speed_images` (500k) images; p stays put at r_t = target exactly.
  """
  step = jnp.sign(sign_mean - target) * (batch_size * interval / speed_images)
  return jnp.clip(p + step, 0.0, 1.0)
