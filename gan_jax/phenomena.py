"""The phenomena that GAN lectures teach, as experiments measured with the library's own pure steps.

The lectures: S. Ermon and A. Grover, "Deep Generative Models", lecture 9 (Stanford CS236), and
M. Borisyak, "Generative Adversarial Networks" (Machine Learning and Data Mining course, HSE).

Each phenomenon trains with `steps.d_step` / `steps.g_step` / `steps.train_call` (jitted, many
small steps fused in `lax.scan`, keys threaded by hand), writes its PNG plot(s) and the measured
numbers (results.json; mode_collapse also metrics.jsonl) into the workdir, and returns the numbers.

* `optimal_discriminator`: D trained against fixed Gaussians q, against D* = p/(p+q); its loss
  against log 4 - 2·JSD(p, q) as q approaches p (Goodfellow et al. 2014, Prop. 1 and Thm. 1).
* `vanishing_gradients`: ‖∇_θ L_G‖ of the saturating and the non-saturating G loss against
  D(G(z)) while D gets better, G frozen at several training stages (CS236 lecture 9: G's loss
  and gradient against D(G(z)); Goodfellow et al. 2014, sec. 3; Arjovsky & Bottou 2017,
  arXiv:1701.04862, figures 2 and 3).
* `critic_vs_discriminator`: a sigmoid D and WGAN critics trained on two far-apart Gaussians,
  their outputs and gradients over the line (Arjovsky et al. 2017, arXiv:1701.07875, figure 2).
* `mode_collapse`: a plain GAN on 16 Gaussians, sample snapshots and a step × mode map of which
  modes are covered (mode collapse and hopping, CS236 lecture 9), against a recipe that covers
  them all.

A config has `task = 'phenomenon'` and a `phenomenon` section: `name` (a key of PHENOMENA) and
the keyword options of that function. The rest of the config (data, model, objective, optim, seed)
defines the GAN the phenomenon is measured on. In the 1-D phenomena the generator is linear,
x = σz + μ (config.model.g.hidden = (), z_dim = 1), and is set to the Gaussian q = N(μ, σ²).
"""
import copy
import functools
import inspect
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import configs, logs, plots, steps, toy_data, workdir as workdir_lib
from gan_jax.metrics import mode_metrics

BCE_OBJECTIVES = ('minimax', 'non_saturating')  # D's output is a logit of D(x) = sigmoid(logit)


# ------------------------------------------------------------------------------------- helpers

def variant(config, overrides=None):
  """An unlocked copy of `config` with the nested dict `overrides` merged in."""
  c = copy.deepcopy(config)
  c.unlock()
  if overrides:
    c.update(overrides.to_dict() if hasattr(overrides, 'to_dict') else overrides)
  return c


def setup(config, overrides=None):
  """(GAN spec, toy dataset) of `config` with `overrides`; a bad name raises ConfigError.

  Phenomena run on the toy datasets (sampled in-jit), so config.data names one of toy_data's.
  """
  c = variant(config, overrides)
  data = configs.choose(toy_data.get, 'data', c.data, skip=('batch_size',))
  return steps.build_gan(c, (data.dim,), data.sample), data


def gaussian_generator(state, mean, std):
  """The state with its linear generator x = std·z + mean, i.e. q = N(mean, std²)."""
  params = {'Dense_0': {'kernel': jnp.reshape(jnp.asarray(std, jnp.float32), (1, 1)),
                        'bias': jnp.reshape(jnp.asarray(mean, jnp.float32), (1,))}}
  return state.replace(g=state.g.replace(params=params), g_ema=params)


def _check_1d_gaussians(gan, data, name):
  """The 1-D phenomena need one 1-D data Gaussian and a linear generator from z_dim = 1."""
  if data.dim != 1 or data.centers is None or len(data.centers) != 1:
    raise configs.ConfigError(f'config.data: {name} needs one 1-D Gaussian as data, e.g. '
                              f"name='mixture_1d' with num_modes=1 (got {data.name!r})")
  g_shapes = jax.eval_shape(functools.partial(steps.create_state, gan), jax.random.key(0)).g
  if gan.z_dim != 1 or jax.tree.map(jnp.shape, g_shapes.params) != {
      'Dense_0': {'kernel': (1, 1), 'bias': (1,)}}:
    raise configs.ConfigError(f'config.model: {name} sets the generator to a Gaussian: it needs '
                              'the linear one, model.generator=mlp, model.g.hidden=(), z_dim=1')
  return float(data.centers[0, 0]), float(data.std)


def train_discriminator(gan, state, key, num_steps: int):
  """`num_steps` D updates (the library's d_step) against the frozen G, in one lax.scan."""
  def body(state, key):
    data_key, step_key = jax.random.split(key)
    return steps.d_step(gan, state, {'x': gan.sample_data(data_key, gan.batch_size)}, step_key)

  return jax.lax.scan(body, state, jax.random.split(key, num_steps))


def d_output(gan, d, x, probability: bool):
  """D's output on x (N, dim): sigmoid(logit) if `probability`, else the raw output."""
  out = steps.discriminate(gan, d.params, d.batch_stats, x, None, train=False)[0]
  return jax.nn.sigmoid(out) if probability else out


def normal_pdf(x, mean, std):
  return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def jsd(p, q, xs) -> float:
  """JSD(p, q) = ½KL(p‖m) + ½KL(q‖m), m = (p + q)/2, by the trapezoid rule on densities at xs.
  """
  m = 0.5 * (p + q)

  def kl_to_m(a):
    ratio = np.divide(a, m, out=np.ones_like(a), where=a > 0)
    return np.trapezoid(a * np.log(ratio), xs)

  return float(0.5 * kl_to_m(p) + 0.5 * kl_to_m(q))


def mode_histograms(samples, centers, std: float, threshold: float = 3.0):
  """(share of samples nearest each mode, HQ samples per mode), PacGAN's rule as mode_metrics."""
  samples, centers = np.asarray(samples, np.float64), np.asarray(centers, np.float64)
  sq_dist = np.sum((samples[:, None, :] - centers[None]) ** 2, axis=-1)
  nearest = np.argmin(sq_dist, axis=1)
  hq = np.sqrt(np.min(sq_dist, axis=1)) / std < threshold
  k = len(centers)
  return (np.bincount(nearest, minlength=k) / len(samples),
          np.bincount(nearest[hq], minlength=k))


# --------------------------------------------------------------------- optimal discriminator

def optimal_discriminator(config, workdir, *, q_means=(4.0, 3.0, 2.0, 1.5, 1.0, 0.5, 0.25, 0.0),
                          q_std=1.0, d_steps=2000, plot_means=(2.0, 1.0, 0.25)):
  """D trained to convergence against q = N(μ, q_std²) for each μ in q_means (vmapped); p: data.

  Measures D(x) against D*(x) = p/(p+q) and the D loss at the trained D (the BCE, by quadrature
  and on fresh minibatches) against its value at D*, log 4 - 2·JSD(p, q), with JSD by quadrature.
  Goodfellow et al. 2014 (arXiv:1406.2661), Prop. 1 and Thm. 1.
  """
  gan, data = setup(config)
  p_mean, p_std = _check_1d_gaussians(gan, data, 'optimal_discriminator')
  means = np.asarray(q_means, np.float64)
  missing = sorted(set(plot_means) - set(means.tolist()))
  if missing:
    raise configs.ConfigError(f'config.phenomenon.plot_means: {missing} are not in q_means')
  init_key, train_key = jax.random.split(jax.random.key(config.seed))
  state = steps.create_state(gan, init_key)
  states = jax.vmap(lambda m: gaussian_generator(state, m, q_std))(jnp.asarray(means, jnp.float32))
  train = jax.jit(jax.vmap(functools.partial(train_discriminator, gan, num_steps=d_steps)))
  states, metrics = train(states, jax.random.split(train_key, len(means)))

  lo = min(p_mean - 8 * p_std, float(means.min()) - 8 * q_std)
  hi = max(p_mean + 8 * p_std, float(means.max()) + 8 * q_std)
  xs = np.linspace(lo, hi, 8001)
  logits = jax.jit(jax.vmap(lambda d: d_output(gan, d, jnp.asarray(xs, jnp.float32)[:, None],
                                               False)))(states.d)
  logits = np.asarray(logits, np.float64)
  p = normal_pdf(xs, p_mean, p_std)
  results = {'p': {'mean': p_mean, 'std': p_std}, 'q_std': q_std, 'd_steps': d_steps, 'q': []}
  curves = {}
  for i, mean in enumerate(means.tolist()):
    q = normal_pdf(xs, mean, q_std)
    d_star = p / (p + q)
    mass = (p + q) / 2 > 1e-3  # where either density has mass
    d_learned = 1 / (1 + np.exp(-logits[i]))
    value = (np.trapezoid(p * np.logaddexp(0, -logits[i]), xs) +
             np.trapezoid(q * np.logaddexp(0, logits[i]), xs))
    js = jsd(p, q, xs)
    results['q'].append({
        'mean': mean, 'jsd': js, 'optimal_loss': math.log(4) - 2 * js,
        'd_loss_quadrature': float(value),
        'd_loss_minibatch': float(np.mean(metrics['d_objective'][i, -100:])),
        'max_abs_d_error': float(np.max(np.abs(d_learned - d_star)[mass]))})
    curves[mean] = (q, d_star, d_learned)

  fine = np.linspace(0.0, float(np.abs(means - p_mean).max()), 60)
  theory = [math.log(4) - 2 * jsd(p, normal_pdf(xs, p_mean + m, q_std), xs) for m in fine]
  window = (xs > min(p_mean - 4 * p_std, min(plot_means) - 4 * q_std)) & (
      xs < max(p_mean + 4 * p_std, max(plot_means) + 4 * q_std))
  plots.plot_optimal_discriminator(
      os.path.join(workdir, 'optimal_discriminator.png'), xs[window], p[window],
      {f'q = N({m:g}, {q_std:g}²)': tuple(a[window] for a in curves[m]) for m in plot_means},
      [(r['mean'] - p_mean, r['d_loss_quadrature'], r['d_loss_minibatch']) for r in results['q']],
      (fine, theory))
  results['plots'] = ['optimal_discriminator.png']
  return results


# ----------------------------------------------------------------------- vanishing gradients

def vanishing_gradients(config, workdir, *, g_stages=(0, 500, 2000), d_steps=1000,
                        measure_every=50, d_lr=1e-3, num_samples=4096):
  """‖∇_θ L_G‖ of the saturating and non-saturating G losses against the mean D(G(z)).

  G is trained (the config's GAN) to each of `g_stages` iterations and frozen; a fresh D (Adam at
  `d_lr`) is then trained against it for `d_steps` updates, and every `measure_every` updates the
  generator gradient of both losses is measured on the same `num_samples` z (steps.g_step's
  g_grad_norm): saturating E[log(1 - D(G(z)))] (Goodfellow et al. 2014, eq. 1) and non-saturating
  -E[log D(G(z))] (sec. 3). As D gets better, D(G(z)) → 0 and the saturating gradient vanishes
  (∝ D(G(z))) while the non-saturating one does not (Arjovsky & Bottou 2017, arXiv:1701.04862).
  """
  gan, data = setup(config)
  d_gan, _ = setup(config, {'optim': {'d_lr': d_lr}})
  sat, _ = setup(config, {'objective': {'name': 'minimax'}})
  ns, _ = setup(config, {'objective': {'name': 'non_saturating'}})
  init_key, loop_key, d_key, measure_key = jax.random.split(jax.random.key(config.seed), 4)
  state = jax.jit(functools.partial(steps.create_state, gan))(init_key)
  fresh_d = jax.jit(functools.partial(steps.create_state, d_gan))(d_key).d
  dummy = {'x': jnp.zeros((num_samples, data.dim))}

  def measure(state, key):
    z_key, g_key = jax.random.split(key)
    _, m_sat = steps.g_step(sat, state, dummy, g_key)
    _, m_ns = steps.g_step(ns, state, dummy, g_key)
    fake = steps.generate(gan, state.g.params, state.g.batch_stats,
                          steps.sample_z(gan, z_key, num_samples))
    return {'d_fake': jnp.mean(d_output(gan, state.d, fake, True)),
            'saturating_grad_norm': m_sat['g_grad_norm'], 'saturating_loss': m_sat['g_loss'],
            'non_saturating_grad_norm': m_ns['g_grad_norm'], 'non_saturating_loss': m_ns['g_loss']}

  @jax.jit
  def train_and_measure(state, key):
    def body(state, key):
      train_key, m_key = jax.random.split(key)
      state, _ = train_discriminator(d_gan, state, train_key, measure_every)
      return state, measure(state, m_key)

    first_key, scan_key = jax.random.split(key)
    first = measure(state, first_key)
    _, later = jax.lax.scan(body, state, jax.random.split(scan_key, d_steps // measure_every))
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, later)

  calls = {}
  step, results = 0, {'d_lr': d_lr, 'num_samples': num_samples, 'stages': []}
  for stage in sorted(g_stages):
    while step < stage:
      n = min(config.train.steps_per_call, stage - step)
      if n not in calls:
        calls[n] = jax.jit(functools.partial(steps.train_call, gan, num_steps=n))
      state, _ = calls[n](state, loop_key)
      step += n
    curve = jax.device_get(train_and_measure(state.replace(d=fresh_d),
                                             jax.random.fold_in(measure_key, stage)))
    curve = {k: np.asarray(v, np.float64).tolist() for k, v in curve.items()}
    curve['d_step'] = list(range(0, d_steps + 1, measure_every))[:len(curve['d_fake'])]
    results['stages'].append({'g_step': stage, **curve})
  for s in results['stages']:
    s['final_ratio'] = s['saturating_grad_norm'][-1] / s['non_saturating_grad_norm'][-1]

  plots.plot_vanishing_gradients(os.path.join(workdir, 'vanishing_gradients.png'),
                                 results['stages'], f'Adam {d_lr:g}')
  results['plots'] = ['vanishing_gradients.png']
  return results


# ----------------------------------------------------------------- critic vs discriminator

def critic_vs_discriminator(config, workdir, *, fake_mean=-4.0, fake_std=0.3, d_steps=2000,
                            critics=None):
  """A sigmoid D (the config's objective) and WGAN critics (`critics`: {label: config overrides})
  trained against the fixed fake Gaussian N(fake_mean, fake_std²), the data a far-apart Gaussian.

  Plots each trained function and its derivative over the line: the discriminator saturates
  (D ≈ 0 or 1, dD/dx ≈ 0 at the fakes) while the critic stays near-linear with a usable
  gradient. Arjovsky et al. 2017 (arXiv:1701.07875), figure 2.
  """
  models = [('discriminator', {})] + sorted((critics or {}).items())
  init_key, train_key, sample_key = jax.random.split(jax.random.key(config.seed), 3)
  results = {'fake': {'mean': fake_mean, 'std': fake_std}, 'd_steps': d_steps, 'models': {}}
  built = []
  for label, overrides in models:  # every model's config is checked before any trains
    c = variant(config, overrides)
    gan, data = setup(c)
    built.append((label, c, gan, *_check_1d_gaussians(gan, data, 'critic_vs_discriminator')))
  panels = []
  for label, c, gan, real_mean, real_std in built:
    probability = c.objective.name in BCE_OBJECTIVES
    state = gaussian_generator(steps.create_state(gan, init_key), fake_mean, fake_std)
    state, _ = jax.jit(functools.partial(train_discriminator, gan, num_steps=d_steps))(
        state, train_key)
    value = functools.partial(d_output, gan, state.d, probability=probability)
    slope = jax.jit(jax.vmap(jax.grad(lambda x: value(x[None, None])[0])))  # d value / dx
    lo = min(fake_mean, real_mean) - 3 * max(fake_std, real_std) - 1.0
    hi = max(fake_mean, real_mean) + 3 * max(fake_std, real_std) + 1.0
    xs = np.linspace(lo, hi, 801, dtype=np.float32)
    ys, dys = np.asarray(jax.jit(value)(xs[:, None])), np.asarray(slope(jnp.asarray(xs)))
    fake = fake_mean + fake_std * np.asarray(jax.random.normal(sample_key, (4096,)))
    at_fake = float(np.mean(np.abs(np.asarray(slope(jnp.asarray(fake, jnp.float32))))))
    between = (xs > min(fake_mean, real_mean)) & (xs < max(fake_mean, real_mean))
    results['models'][label] = {
        'objective': c.objective.name, 'penalty': c.penalty.name,
        'output': 'D(x) = sigmoid(logit)' if probability else 'critic value f(x)',
        'mean_abs_grad_at_fake': at_fake, 'max_abs_grad': float(np.max(np.abs(dys))),
        'grad_at_fake_over_max': at_fake / float(np.max(np.abs(dys))),
        'min_abs_grad_between_means': float(np.min(np.abs(dys[between]))),
        'output_at_fake_mean': float(np.interp(fake_mean, xs, ys)),
        'output_at_real_mean': float(np.interp(real_mean, xs, ys))}
    penalty = '' if c.penalty.name == 'none' else f' + {c.penalty.name}'
    panels.append({
        'title': f'{label}: {c.objective.name}{penalty}', 'x': xs, 'value': ys, 'slope': dys,
        'name': 'D(x)' if probability else 'f(x)', 'grad_at_fake': at_fake,
        'densities': [(normal_pdf(xs, real_mean, real_std), 'black'),
                      (normal_pdf(xs, fake_mean, fake_std), 'tab:green')]})
  plots.plot_function_panels(
      os.path.join(workdir, 'critic_vs_discriminator.png'), panels,
      'data (black) and fake (green) Gaussians: a saturating D against WGAN critics')
  results['plots'] = ['critic_vs_discriminator.png']
  return results


# ----------------------------------------------------------------------------- mode collapse

def _hopping(mass, collapsed: float = 0.5):
  """Where the samples sit over snapshots, from the nearest-mode shares (S, K).

  A snapshot is collapsed if one mode holds at least `collapsed` of the samples; a hop is a pair
  of consecutive collapsed snapshots whose top modes differ.
  """
  dominant, share = np.argmax(mass, axis=1), np.max(mass, axis=1)
  on = share >= collapsed
  hops = on[1:] & on[:-1] & (dominant[1:] != dominant[:-1])
  return {'dominant_mode': dominant.tolist(), 'dominant_share': share.tolist(),
          'collapsed_snapshots': int(on.sum()), 'hops': int(hops.sum()),
          'modes_collapsed_onto': int(len(set(dominant[on].tolist()))),
          'mass_tv_between_snapshots': (0.5 * np.abs(np.diff(mass, axis=0)).sum(axis=1)).tolist()}


def mode_collapse(config, workdir, *, snapshot_every=250, num_shown=8, compare=None):
  """A plain GAN on a mixture of Gaussians (the config), snapshots every `snapshot_every` steps.

  At each snapshot, num_samples = config.eval.num_samples samples of the raw generator (fixed z)
  are sorted by PacGAN's rule: each goes to its nearest mode, and is high quality (HQ) within 3σ.
  The plots show the samples at `num_shown` snapshots and, per step × mode, the share of samples
  nearest the mode and its HQ samples: a generator that collapses onto one mode and hops to
  another between snapshots. `compare` ({label: config overrides}) adds runs on the same data,
  e.g. the R1 recipe of experiments/default.py (Mescheder et al. 2018, arXiv:1801.04406).
  Seed 000 ("mode collapse and hopping", 16 Gaussians); Lin et al. 2018 (arXiv:1712.04086).
  """
  runs = [('GAN', config, 'config')] + [
      (label, variant(config, o), f'config.phenomenon.compare.{label}')
      for label, o in sorted((compare or {}).items())]
  built = []
  for label, c, field in runs:  # every run's config is checked before any trains
    gan, data = setup(c)
    if data.centers is None:
      raise configs.ConfigError(f'config.data: mode_collapse needs a mixture of Gaussians, and '
                                f'{data.name!r} has no modes')
    if c.train.steps % snapshot_every:
      raise configs.ConfigError(f'{field}.train.steps={c.train.steps} must be a multiple of '
                                f'config.phenomenon.snapshot_every={snapshot_every}')
    built.append((label, c, gan, data))
  writer = logs.MetricWriter(workdir)
  results = {'runs': {}}
  shown = {}
  try:
    for label, c, gan, data in built:
      init_key, loop_key, eval_key = jax.random.split(jax.random.key(c.seed), 3)
      state = jax.jit(functools.partial(steps.create_state, gan))(init_key)
      call = jax.jit(functools.partial(steps.train_call, gan, num_steps=snapshot_every),
                     donate_argnums=0)
      sample = jax.jit(lambda params, stats: steps.generate(
          gan, params, stats, steps.sample_z(gan, eval_key, c.eval.num_samples)))
      snaps = {'step': [], 'modes': [], 'hq_fraction': [], 'reverse_kl': [], 'mass': [], 'hq': []}
      samples = []
      for step in range(0, c.train.steps + 1, snapshot_every):
        if step:
          state, _ = call(state, loop_key)
        fake = np.asarray(sample(state.g.params, state.g.batch_stats))
        mass, hq = mode_histograms(fake, data.centers, data.std)
        metrics = mode_metrics(fake, data.centers, data.std)
        writer.write(step, 'eval', metrics, {
            'run': label, 'generator': 'raw', 'num_samples': c.eval.num_samples,
            'data': data.name, 'num_modes': len(data.centers), 'std': data.std,
            'modes': 'PacGAN: nearest mean by std-normalised distance, HQ if < 3 std'})
        for k, v in (('step', step), ('mass', mass.tolist()), ('hq', hq.tolist()),
                     *metrics.items()):
          snaps[k].append(v)
        samples.append(fake)
      results['runs'][label] = {'objective': c.objective.name, 'penalty': c.penalty.name,
                                'num_samples': c.eval.num_samples,
                                **snaps, **_hopping(np.asarray(snaps['mass'])),
                                'final': {k: snaps[k][-1] for k in metrics}}
      shown[label] = samples
  finally:
    writer.close()

  snapshots = []
  for label, c, gan, data in built:
    r = results['runs'][label]
    picks = np.unique(np.linspace(0, len(r['step']) - 1, num_shown).round().astype(int))
    snapshots.append((data.centers, np.asarray(data.sample(jax.random.key(0), 2000)), [
        (f'{label}, step {r["step"][i]}\n{r["modes"][i]} modes, '
         f'{100 * r["hq_fraction"][i]:.0f}% HQ',
         shown[label][i]) for i in picks]))
  plots.plot_sample_snapshots(os.path.join(workdir, 'mode_snapshots.png'), snapshots)
  plots.plot_mode_coverage(os.path.join(workdir, 'mode_coverage.png'), results['runs'])
  results['plots'] = ['mode_snapshots.png', 'mode_coverage.png']
  return results


# ------------------------------------------------------------------------------------- entry

PHENOMENA = {
    'optimal_discriminator': optimal_discriminator,
    'vanishing_gradients': vanishing_gradients,
    'critic_vs_discriminator': critic_vs_discriminator,
    'mode_collapse': mode_collapse,
}


def options(config):
  """(function, keyword options) of config.phenomenon; a bad name or option raises ConfigError."""
  section = config.get('phenomenon')
  if section is None or 'name' not in section:
    raise configs.ConfigError("config.phenomenon: task='phenomenon' needs a phenomenon section "
                              f'with a name; valid names: {", ".join(sorted(PHENOMENA))}')
  fn = configs.lookup(PHENOMENA, 'phenomenon.name', section.name)
  valid = [p.name for p in inspect.signature(fn).parameters.values() if p.kind == p.KEYWORD_ONLY]
  given = {k: v for k, v in section.items() if k != 'name'}
  unknown = sorted(set(given) - set(valid))
  if unknown:
    raise configs.ConfigError(f'config.phenomenon: {section.name} has no option '
                              f'{", ".join(unknown)}; its options: {", ".join(valid)}')
  return fn, {k: v.to_dict() if hasattr(v, 'to_dict') else v for k, v in given.items()}


def _plain(x):
  """Results as JSON types."""
  if isinstance(x, dict):
    return {str(k): _plain(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_plain(v) for v in x]
  if isinstance(x, (np.generic, np.ndarray)):
    return _plain(x.tolist())
  return x


def run(config, workdir: str, overwrite: bool = False) -> dict:
  """Runs config.phenomenon in `workdir`; returns the numbers.

  A rerun of the same config replaces its outputs; a workdir of another config (a training run,
  another phenomenon) is refused unless `overwrite`, which deletes that run's files first.
  """
  fn, kwargs = options(config)
  with workdir_lib.Lock(workdir, 'train'):
    recorded = None if overwrite else workdir_lib.recorded_config(workdir)
    workdir_lib.refuse_other_run(workdir, recorded, config)
    # a rerun replaces the run's outputs (metrics.jsonl, events), it does not append
    workdir_lib.prepare(workdir, config, None, overwrite=True, log=lambda message: None)
    start = time.perf_counter()
    results = fn(config, workdir, **kwargs)
    results = _plain({'phenomenon': config.phenomenon.name, **results,
                      'wall_seconds': time.perf_counter() - start})
    workdir_lib.write_atomic(os.path.join(workdir, 'results.json'), json.dumps(results, indent=1))
  return results
