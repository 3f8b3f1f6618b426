"""GAN theory, measured: the optimal discriminator and the JSD; the WGAN-GP critic and W1.

Goodfellow et al. 2014, Prop. 1 and Thm. 1: for fixed G, the BCE-optimal D*(x) = p(x)/(p(x)+q(x))
and the D loss there equals log 4 - 2·JSD(p, q). Gulrajani et al. 2017: a critic trained with the
gradient penalty estimates W1(p, q) = sup_{‖f‖_L ≤ 1} E_p f - E_q f; for N(0,1) vs N(μ,1) it is |μ|.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import stats

from gan_jax import losses, models, penalties

P = stats.norm(0.0, 1.0)
Q = stats.norm(1.5, 0.7)


def _train_discriminator(loss_fn, sample_p, sample_q, steps, lr, betas=(0.9, 0.999), batch=1024):
  d = models.MLPDiscriminator(hidden=(64, 64), activation='tanh')
  params = d.init(jax.random.key(0), jnp.zeros((1, 1)))['params']
  tx = optax.adam(lr, b1=betas[0], b2=betas[1])

  def step(carry, key):
    params, opt_state = carry
    kp, kq, kl = jax.random.split(key, 3)
    real, fake = sample_p(kp, batch), sample_q(kq, batch)
    d_fn = lambda p, x: d.apply({'params': p}, x)
    grads = jax.grad(lambda p: loss_fn(functools.partial(d_fn, p), real, fake, kl))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), None

  run = jax.jit(lambda c, keys: jax.lax.scan(step, c, keys)[0])
  params, _ = run((params, tx.init(params)), jax.random.split(jax.random.key(1), steps))
  return jax.jit(lambda x: d.apply({'params': params}, x))


def _gauss(mu, sigma):
  return lambda key, n: mu + sigma * jax.random.normal(key, (n, 1))


def test_optimal_discriminator_and_jsd():
  bce = lambda d_fn, real, fake, key: losses.bce_d_loss(d_fn(real), d_fn(fake))
  d = _train_discriminator(bce, _gauss(0.0, 1.0), _gauss(1.5, 0.7), steps=3000, lr=3e-3)

  # D(x) against D*(x) = p/(p+q) where either density has mass.
  xs = np.linspace(-2.0, 3.0, 201, dtype=np.float32)
  d_star = P.pdf(xs) / (P.pdf(xs) + Q.pdf(xs))
  d_learned = np.asarray(jax.nn.sigmoid(d(xs[:, None])))
  assert np.max(np.abs(d_learned - d_star)) < 0.05

  # The D loss at the learned D, by numerical integration, against log 4 - 2·JSD(p, q).
  grid = np.linspace(-8.0, 8.0, 16001)
  p, q = P.pdf(grid), Q.pdf(grid)
  m = 0.5 * (p + q)
  jsd = 0.5 * np.trapezoid(p * np.log(p / m), grid) + 0.5 * np.trapezoid(q * np.log(q / m), grid)
  logits = np.asarray(d(grid[:, None].astype(np.float32)), np.float64)
  value = (np.trapezoid(p * np.logaddexp(0, -logits), grid) +
           np.trapezoid(q * np.logaddexp(0, logits), grid))
  assert 0.1 < jsd < math.log(2)
  assert value >= math.log(4) - 2 * jsd - 1e-4  # the optimum is a lower bound
  np.testing.assert_allclose(value, math.log(4) - 2 * jsd, atol=0.01)


def test_wgan_gp_critic_estimates_w1():
  # The penalty is soft: for two shifted Gaussians the best critic is linear with slope s, and
  # maximising μs - λ(s - 1)² gives s = 1 + μ/(2λ), so the estimate is μ(1 + μ/(2λ)), not μ.
  mu, lam = 1.0, 10.0

  def critic_loss(d_fn, real, fake, key):
    return (losses.wasserstein_d_loss(d_fn(real), d_fn(fake)) +
            lam * penalties.gradient_penalty(d_fn, real, fake, key))

  f = _train_discriminator(critic_loss, _gauss(0.0, 1.0), _gauss(mu, 1.0), steps=2000, lr=1e-3,
                           betas=(0.5, 0.9))
  x = jax.random.normal(jax.random.key(7), (200_000, 1))
  w1_estimate = float(jnp.mean(f(x)) - jnp.mean(f(x + mu)))
  assert abs(w1_estimate - abs(mu)) < 0.1 * abs(mu), w1_estimate
  np.testing.assert_allclose(w1_estimate, mu * (1 + mu / (2 * lam)), rtol=0.02)
