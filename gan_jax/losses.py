"""The loss zoo: GAN objectives as pairs of pure functions on discriminator outputs.

Each objective is an ``Objective(d_loss, g_loss)``:

* ``d_loss(real_out, fake_out) -> scalar``: what the discriminator (critic, energy function)
  minimises;
* ``g_loss(fake_out) -> scalar``: what the generator minimises; for the relativistic objectives
  (``g_uses_real``), ``g_loss(fake_out, real_out)``, since G's loss compares fakes with reals.

Outputs are logits (or critic values, or energies), never probabilities: every log-sigmoid is
computed stably through ``softplus`` (``-log sigmoid(x) = softplus(-x)`` and
``-log(1 - sigmoid(x)) = softplus(x)``). Outputs may have any shape (``(B,)`` or ``(B, 1)``); the
loss averages over all elements. The exception is 'mmd', a two-sample statistic on whole
batches: its outputs are vectors (B, K) (an embedding, or the data itself), one row per example.

Terms that are not objectives, for the steps to add: `pulling_away` (EBGAN's regulariser on a
batch of embeddings).
"""
import inspect
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


class Objective(NamedTuple):
  """A GAN objective: the discriminator's and the generator's loss, matched."""
  d_loss: Callable[[ArrayLike, ArrayLike], jax.Array]  # (real_out, fake_out) -> scalar
  g_loss: Callable[..., jax.Array]                     # fake_out (, real_out) -> scalar
  g_uses_real: bool = False                            # g_loss takes (fake_out, real_out)


def g_value(objective: Objective, fake_out: ArrayLike, real_out: ArrayLike) -> jax.Array:
  """objective.g_loss on the fakes, given D's outputs on reals too when the objective needs them."""
  if objective.g_uses_real:
    return objective.g_loss(fake_out, real_out)
  return objective.g_loss(fake_out)


def bce_d_loss(real_logits: ArrayLike, fake_logits: ArrayLike) -> jax.Array:
  """Binary cross-entropy D loss: -E[log D(x)] - E[log(1 - D(G(z)))], with D = sigmoid(logit).

  Goodfellow et al. 2014, "Generative Adversarial Nets" (arXiv:1406.2661), eq. 1. At the optimal
  D*(x) = p(x) / (p(x) + q(x)) its value is log 4 - 2 JSD(p, q).
  """
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def smoothed_bce_d_loss(real_logits: ArrayLike, fake_logits: ArrayLike,
                        real_target: float = 0.9) -> jax.Array:
  """BCE D loss with one-sided label smoothing: real target α, fake target 0.

  -E[α log D(x) + (1 - α) log(1 - D(x))] - E[log(1 - D(G(z)))]. Salimans et al. 2016, "Improved
  Techniques for Training GANs" (arXiv:1606.03498), sec. 3.4 (α = 0.9): only the real side is
  smoothed, since smoothing the fake target too moves D's optimum where the data has no mass.
  """
  a = real_target
  return (jnp.mean(a * jax.nn.softplus(-real_logits) + (1.0 - a) * jax.nn.softplus(real_logits)) +
          jnp.mean(jax.nn.softplus(fake_logits)))


def one_sided_label_smoothing(objective: Objective, real_target: float) -> Objective:
  """`objective` with its cross-entropy D loss smoothed (real target `real_target`); G unchanged.

  Only the cross-entropy objectives (minimax, non_saturating) have labels to smooth.
  """
  if real_target == 1.0:
    return objective
  if objective.d_loss is not bce_d_loss:
    raise ValueError('one-sided label smoothing needs a cross-entropy D loss; valid objectives: '
                     'minimax, non_saturating')
  return objective._replace(
      d_loss=lambda real, fake: smoothed_bce_d_loss(real, fake, real_target))


def minimax_g_loss(fake_logits: ArrayLike) -> jax.Array:
  """Saturating (minimax) G loss: E[log(1 - D(G(z)))] = -E[softplus(logit)].

  Goodfellow et al. 2014 (arXiv:1406.2661), eq. 1. Its gradient vanishes when D confidently
  rejects the fakes (logit -> -inf), which is why it saturates early in training.
  """
  return -jnp.mean(jax.nn.softplus(fake_logits))


def non_saturating_g_loss(fake_logits: ArrayLike) -> jax.Array:
  """Non-saturating G loss: -E[log D(G(z))] = E[softplus(-logit)].

  Goodfellow et al. 2014 (arXiv:1406.2661), section 3: same fixed point as the minimax game,
  strong gradients where D rejects the fakes.
  """
  return jnp.mean(jax.nn.softplus(-fake_logits))


def wasserstein_d_loss(real_out: ArrayLike, fake_out: ArrayLike) -> jax.Array:
  """Wasserstein critic loss: E[f(G(z))] - E[f(x)].

  Arjovsky et al. 2017, "Wasserstein GAN" (arXiv:1701.07875). With f 1-Lipschitz (weight
  clipping or a gradient penalty), -min of this is the Kantorovich-Rubinstein estimate of W1.
  """
  return jnp.mean(fake_out) - jnp.mean(real_out)


def wasserstein_g_loss(fake_out: ArrayLike) -> jax.Array:
  """Wasserstein G loss: -E[f(G(z))]. Arjovsky et al. 2017 (arXiv:1701.07875)."""
  return -jnp.mean(fake_out)


def hinge_d_loss(real_out: ArrayLike, fake_out: ArrayLike) -> jax.Array:
  """Hinge D loss: E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))].

  Lim & Ye 2017, "Geometric GAN" (arXiv:1705.02894); Miyato et al. 2018 (arXiv:1802.05957).
  The G loss is the Wasserstein one, -E[D(G(z))].
  """
  return jnp.mean(jax.nn.relu(1.0 - real_out)) + jnp.mean(jax.nn.relu(1.0 + fake_out))


def least_squares_d_loss(real_out: ArrayLike, fake_out: ArrayLike) -> jax.Array:
  """Least-squares D loss with targets a=0 (fake), b=1 (real): ½E[(D(x)-1)²] + ½E[D(G(z))²].

  Mao et al. 2017, "Least Squares GANs" (arXiv:1611.04076), eq. 2 with the 0-1 coding.
  """
  return 0.5 * jnp.mean((real_out - 1.0) ** 2) + 0.5 * jnp.mean(fake_out ** 2)


def least_squares_g_loss(fake_out: ArrayLike) -> jax.Array:
  """Least-squares G loss with target c=1: ½E[(D(G(z))-1)²]. Mao et al. 2017 (arXiv:1611.04076)."""
  return 0.5 * jnp.mean((fake_out - 1.0) ** 2)


def ebgan(margin: float = 1.0) -> Objective:
  """Energy-based GAN on energies E (low on data): D = E(x) + [m - E(G(z))]₊, G = E(G(z)).

  Zhao et al. 2017, "Energy-based Generative Adversarial Network" (arXiv:1609.03126), eqs. 1-2.
  The discriminator's outputs are energies (the autoencoder's reconstruction error), not logits.
  """
  def d_loss(real_energy, fake_energy):
    return jnp.mean(real_energy) + jnp.mean(jax.nn.relu(margin - fake_energy))

  def g_loss(fake_energy):
    return jnp.mean(fake_energy)

  return Objective(d_loss, g_loss)


def relativistic_d_loss(real_logits: ArrayLike, fake_logits: ArrayLike) -> jax.Array:
  """Relativistic standard GAN (RSGAN) D loss: -E[log σ(C(x_r) - C(x_f))], pairs matched by index.

  Jolicoeur-Martineau 2019, "The relativistic discriminator: a key element missing from standard
  GAN" (arXiv:1807.00734), eq. 8. D estimates how much more realistic a real sample is than a
  fake one. The G loss swaps the roles: -E[log σ(C(x_f) - C(x_r))].
  """
  return jnp.mean(jax.nn.softplus(fake_logits - real_logits))


def relativistic_g_loss(fake_logits: ArrayLike, real_logits: ArrayLike) -> jax.Array:
  """RSGAN G loss: -E[log σ(C(x_f) - C(x_r))]. Jolicoeur-Martineau 2019 (arXiv:1807.00734)."""
  return relativistic_d_loss(fake_logits, real_logits)


def relativistic_average_d_loss(real_logits: ArrayLike, fake_logits: ArrayLike) -> jax.Array:
  """Relativistic average GAN (RaSGAN) D loss, with D̃(x_r) = C(x_r) - E C(x_f) and
  D̃(x_f) = C(x_f) - E C(x_r): -E[log σ(D̃(x_r))] - E[log(1 - σ(D̃(x_f)))].

  Jolicoeur-Martineau 2019 (arXiv:1807.00734), eq. 13. The G loss is the same with real and
  fake swapped.
  """
  real_rel = real_logits - jnp.mean(fake_logits)
  fake_rel = fake_logits - jnp.mean(real_logits)
  return jnp.mean(jax.nn.softplus(-real_rel)) + jnp.mean(jax.nn.softplus(fake_rel))


def relativistic_average_g_loss(fake_logits: ArrayLike, real_logits: ArrayLike) -> jax.Array:
  """RaSGAN G loss: -E[log σ(D̃(x_f))] - E[log(1 - σ(D̃(x_r)))]. (arXiv:1807.00734, eq. 14)."""
  return relativistic_average_d_loss(fake_logits, real_logits)


def relativistic_average_hinge_d_loss(real_out: ArrayLike, fake_out: ArrayLike) -> jax.Array:
  """RaHingeGAN D loss: E[max(0, 1 - D̃(x_r))] + E[max(0, 1 + D̃(x_f))], D̃ as in RaSGAN.

  Jolicoeur-Martineau 2019 (arXiv:1807.00734), sec. 4.3 and appendix; the G loss swaps real and
  fake.
  """
  real_rel = real_out - jnp.mean(fake_out)
  fake_rel = fake_out - jnp.mean(real_out)
  return jnp.mean(jax.nn.relu(1.0 - real_rel)) + jnp.mean(jax.nn.relu(1.0 + fake_rel))


def relativistic_average_hinge_g_loss(fake_out: ArrayLike, real_out: ArrayLike) -> jax.Array:
  """RaHingeGAN G loss: E[max(0, 1 - D̃(x_f))] + E[max(0, 1 + D̃(x_r))]. (arXiv:1807.00734)."""
  return relativistic_average_hinge_d_loss(fake_out, real_out)


# The bandwidths of MMD-GAN's Gaussian mixture kernel (Li et al. 2017, arXiv:1705.08584, sec. 5).
MMD_BANDWIDTHS = (1.0, 2.0, 4.0, 8.0, 16.0)


def _rows(x: ArrayLike) -> jax.Array:
  """x (N, ...) as N row vectors (N, K), trailing dims flattened."""
  x = jnp.asarray(x)
  return x.reshape((x.shape[0], -1))


def _off_diagonal_mean(k: jax.Array) -> jax.Array:
  """Σ_{i≠j} k_ij / N(N-1) of a square (N, N) matrix."""
  n = k.shape[0]
  return (jnp.sum(k) - jnp.trace(k)) / (n * (n - 1))


def mixture_rbf_kernel(x: ArrayLike, y: ArrayLike, bandwidths=MMD_BANDWIDTHS) -> jax.Array:
  """k(x_i, y_j) = Σ_σ exp(-‖x_i - y_j‖² / 2σ²) for rows x (N, K) and y (M, K): shape (N, M).

  The mixture of Gaussian kernels of GMMN (Li, Swersky & Zemel 2015, arXiv:1502.02761, sec. 3)
  and MMD-GAN (Li et al. 2017, arXiv:1705.08584, sec. 5). ‖x - y‖² = ‖x‖² + ‖y‖² - 2xᵀy,
  clipped at 0 (no (N, M, K) difference tensor).
  """
  sq = (jnp.sum(x ** 2, axis=1)[:, None] + jnp.sum(y ** 2, axis=1)[None, :] -
        2.0 * x @ y.T)
  sq = jnp.maximum(sq, 0.0)
  return sum(jnp.exp(-sq / (2.0 * float(s) ** 2)) for s in bandwidths)


def mmd2(x: ArrayLike, y: ArrayLike, bandwidths=MMD_BANDWIDTHS) -> jax.Array:
  """Unbiased squared MMD of two batches x (N, ...) and y (M, ...), trailing dims flattened:

      MMD²_u = Σ_{i≠j} k(x_i, x_j) / N(N-1) + Σ_{i≠j} k(y_i, y_j) / M(M-1)
               - 2 Σ_{i,j} k(x_i, y_j) / NM,

  with k the Gaussian mixture `mixture_rbf_kernel` over `bandwidths`. Gretton et al. 2012, "A
  Kernel Two-Sample Test" (JMLR 13), eq. 3 (the U-statistic; it can be slightly negative when
  x and y come from one distribution). The training signal of GMMN (Li, Swersky & Zemel 2015,
  arXiv:1502.02761) and MMD-GAN (Li et al. 2017, arXiv:1705.08584).
  """
  x, y = _rows(x), _rows(y)
  if x.shape[0] < 2 or y.shape[0] < 2 or x.shape[1] != y.shape[1]:
    raise ValueError(f'mmd2 needs batches (N>=2, K) and (M>=2, K), got {x.shape}, {y.shape}')
  return (_off_diagonal_mean(mixture_rbf_kernel(x, x, bandwidths)) +
          _off_diagonal_mean(mixture_rbf_kernel(y, y, bandwidths)) -
          2.0 * jnp.mean(mixture_rbf_kernel(x, y, bandwidths)))


def mmd(bandwidths=MMD_BANDWIDTHS) -> Objective:
  """MMD objective on D's outputs (vectors): G = MMD²(real, fake), D = -MMD²(real, fake).

  D's outputs are an embedding f: this is MMD-GAN, the MMD of a Gaussian mixture kernel on a
  learned feature map, k(f(x), f(y)) (Li et al. 2017, "MMD GAN: Towards Deeper Understanding of
  Moment Matching Network", arXiv:1705.08584, without its autoencoder terms); with the
  'identity' discriminator (the data itself, no parameters) it is GMMN (Li, Swersky & Zemel
  2015, "Generative Moment Matching Networks", arXiv:1502.02761). G's loss needs D's outputs
  on the reals (g_uses_real).
  """
  bandwidths = tuple(float(s) for s in bandwidths)
  if not bandwidths or not all(s > 0 for s in bandwidths):
    raise ValueError(f'mmd bandwidths must be a non-empty tuple of numbers > 0, got {bandwidths}')

  def d_loss(real_out, fake_out):
    return -mmd2(real_out, fake_out, bandwidths)

  def g_loss(fake_out, real_out):
    return mmd2(real_out, fake_out, bandwidths)

  return Objective(d_loss, g_loss, g_uses_real=True)


def pulling_away(embeddings: ArrayLike) -> jax.Array:
  """EBGAN's pulling-away term on a batch of embeddings S (N, ...), trailing dims flattened:

      f_PT(S) = 1 / N(N-1) Σ_{i≠j} (S_iᵀ S_j / ‖S_i‖ ‖S_j‖)²,

  the mean squared cosine similarity of distinct rows: 0 for mutually orthogonal rows, 1 for
  parallel ones. Zhao, Mathieu & LeCun 2017, "Energy-based Generative Adversarial Network"
  (arXiv:1609.03126), eq. 8: added to G's loss on the encoder codes of a fake batch, it pushes
  the samples apart (against mode collapse). A zero row has cosine 0 with every row.
  """
  s = _rows(embeddings)
  if s.shape[0] < 2:
    raise ValueError(f'pulling_away needs N >= 2 embeddings, got {s.shape}')
  s = s * jax.lax.rsqrt(jnp.maximum(jnp.sum(s ** 2, axis=1, keepdims=True), 1e-12))
  return _off_diagonal_mean((s @ s.T) ** 2)


def _objective(d_loss, g_loss, g_uses_real: bool = False) -> Callable[[], Objective]:
  """The factory of an objective without options."""
  return lambda: Objective(d_loss, g_loss, g_uses_real)


# name -> factory(**options) -> Objective; `get` builds one.
OBJECTIVES: dict[str, Callable[..., Objective]] = {
    'minimax': _objective(bce_d_loss, minimax_g_loss),
    'non_saturating': _objective(bce_d_loss, non_saturating_g_loss),
    'wasserstein': _objective(wasserstein_d_loss, wasserstein_g_loss),
    'hinge': _objective(hinge_d_loss, wasserstein_g_loss),
    'least_squares': _objective(least_squares_d_loss, least_squares_g_loss),
    'ebgan': ebgan,
    'relativistic': _objective(relativistic_d_loss, relativistic_g_loss, g_uses_real=True),
    'relativistic_average': _objective(relativistic_average_d_loss, relativistic_average_g_loss,
                                       g_uses_real=True),
    'relativistic_average_hinge': _objective(relativistic_average_hinge_d_loss,
                                             relativistic_average_hinge_g_loss, g_uses_real=True),
    'mmd': mmd,
}


def get(name: str, **kwargs) -> Objective:
  """The objective called `name`, built by its factory in OBJECTIVES with options `kwargs`."""
  if name not in OBJECTIVES:
    raise ValueError(
        f'unknown objective {name!r}; valid objectives: {", ".join(sorted(OBJECTIVES))}')
  factory = OBJECTIVES[name]
  try:
    inspect.signature(factory).bind(**kwargs)
  except TypeError:
    options = sorted(inspect.signature(factory).parameters)
    if not options:
      raise ValueError(f'objective {name!r} takes no options, got {sorted(kwargs)}') from None
    raise ValueError(f'objective {name!r} takes options {", ".join(options)}, got '
                     f'{sorted(kwargs)}') from None
  return factory(**kwargs)
