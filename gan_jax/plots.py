"""PNG plots of low-dimensional runs: samples over the data, D's output behind them."""
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_toy(path: str, real, fake, d_fn=None, title: str = '') -> None:
  """Scatter of generated vs real samples; for 2-D data with `d_fn`, D's output as a contour.

  d_fn maps an (N, dim) array to (N,) discriminator outputs. For 1-D data the plot shows the two
  histograms and D's output along the line.
  """
  real, fake = np.asarray(real), np.asarray(fake)
  fig, ax = plt.subplots(figsize=(6, 6) if real.shape[1] == 2 else (8, 4))
  both = np.concatenate([real, fake])
  lo, hi = np.percentile(both, 0.5, axis=0), np.percentile(both, 99.5, axis=0)
  pad = 0.15 * (hi - lo) + 0.1
  lo, hi = lo - pad, hi + pad
  if real.shape[1] == 2:
    if d_fn is not None:
      xs, ys = np.linspace(lo[0], hi[0], 120), np.linspace(lo[1], hi[1], 120)
      grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype(np.float32)
      values = np.asarray(d_fn(grid)).reshape(120, 120)
      cs = ax.contourf(xs, ys, values, levels=30, cmap='coolwarm', alpha=0.6)
      fig.colorbar(cs, ax=ax, label='D output', shrink=0.8)
    ax.scatter(real[:, 0], real[:, 1], s=3, c='black', alpha=0.4, label='data')
    ax.scatter(fake[:, 0], fake[:, 1], s=3, c='tab:green', alpha=0.6, label='generator')
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect('equal')
  else:
    bins = np.linspace(lo[0], hi[0], 200)
    ax.hist(real[:, 0], bins=bins, density=True, alpha=0.5, color='black', label='data')
    ax.hist(fake[:, 0], bins=bins, density=True, alpha=0.5, color='tab:green', label='generator')
    if d_fn is not None:
      xs = np.linspace(lo[0], hi[0], 400, dtype=np.float32)[:, None]
      twin = ax.twinx()
      twin.plot(xs[:, 0], np.asarray(d_fn(xs)), color='tab:red', label='D output')
      twin.set_ylabel('D output')
  ax.legend(loc='upper right', markerscale=4)
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def read_png(path: str) -> np.ndarray:
  """A PNG written here as an (H, W, 3) float array in [0, 1] (for TensorBoard)."""
  return np.asarray(plt.imread(path), np.float32)[..., :3]


def image_grid(images, columns: int, pad: int = 1):
  """(N, H, W, C) images in [-1, 1] -> one (rows·(H+pad), columns·(W+pad), 3) array in [0, 1]."""
  images = np.clip((np.asarray(images, np.float32) + 1) / 2, 0, 1)
  if images.shape[-1] == 1:
    images = np.repeat(images, 3, axis=-1)
  n, h, w, c = images.shape
  rows = -(-n // columns)
  grid = np.ones((rows * (h + pad) + pad, columns * (w + pad) + pad, c), np.float32)
  for i, image in enumerate(images):
    r, col = divmod(i, columns)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = image
  return grid


def save_image_panels(path: str, panels, title: str = '', row_labels=None) -> None:
  """Side-by-side image grids [(label, grid)] in one PNG (e.g. the EMA and the raw generator);
  `row_labels` name the grids' rows (a conditional G's classes)."""
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4.8), squeeze=False)
  for ax, (label, grid) in zip(axes[0], panels):
    ax.imshow(grid, interpolation='nearest')
    ax.set_title(f'{label} generator')
    if row_labels:
      height = grid.shape[0] / len(row_labels)
      ax.set_yticks([(r + 0.5) * height for r in range(len(row_labels))], list(row_labels))
      ax.set_xticks([])
      ax.tick_params(length=0, labelsize=7)
      for spine in ax.spines.values():
        spine.set_visible(False)
    else:
      ax.axis('off')
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


# ------------------------------------------------------------- phenomena (gan_jax/phenomena.py)

def _save(fig, path: str) -> None:
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def plot_optimal_discriminator(path: str, xs, p, curves: dict, points, theory) -> None:
  """Left: trained D(x) (solid) against D* = p/(p+q) (dashed) over the densities, for each
  {label: (q, d_star, d_learned)} in `curves`. Right: the trained D's loss at `points`
  [(mean of q - mean of p, loss by quadrature, loss on minibatches)] against `theory`
  (shifts, log 4 - 2·JSD(p, q))."""
  fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
  ax.fill_between(xs, p / p.max(), color='black', alpha=0.12, label='p (data)')
  for (label, (q, d_star, d_learned)), color in zip(curves.items(), plt.cm.tab10.colors):
    ax.fill_between(xs, q / q.max(), color=color, alpha=0.08)
    ax.plot(xs, d_learned, color=color, lw=2, label=f'trained D, {label}')
    ax.plot(xs, d_star, color=color, lw=1.2, ls='--', label='p/(p+q)')
  ax.set(xlabel='x', ylabel='D(x)', title='trained D against the optimal D* = p/(p+q)',
         ylim=(0, 1.02))
  ax.legend(fontsize=7, loc='upper left')
  shifts, quadrature, minibatch = zip(*points)
  bx.plot(*theory, color='black', label='log 4 − 2·JSD(p, q) (quadrature)')
  bx.plot(shifts, quadrature, 'o', color='tab:red', label='trained D: BCE by quadrature')
  bx.plot(shifts, minibatch, 'x', color='tab:blue', label='trained D: BCE on its last minibatches')
  bx.axhline(np.log(4), color='grey', ls=':', lw=1)
  bx.set(xlabel='mean of q − mean of p', ylabel='D loss',
         title='D loss at the trained D → log 4 as q → p')
  bx.legend(fontsize=8)
  _save(fig, path)


def plot_vanishing_gradients(path: str, stages, d_optimizer: str) -> None:
  """‖∇θ L_G‖ of both G losses against mean D(G(z)); D(G(z)) over D's training; their ratio.

  `stages`: [{'g_step', 'd_step', 'd_fake', 'saturating_grad_norm', 'non_saturating_grad_norm'}].
  """
  fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
  for i, s in enumerate(stages):
    color = plt.cm.viridis(i / max(len(stages) - 1, 1) * 0.85)
    label = f'G after {s["g_step"]} steps'
    axes[0].loglog(s['d_fake'], s['non_saturating_grad_norm'], 'o-', ms=3, color=color,
                   label=f'{label}: −log D(G(z))')
    axes[0].loglog(s['d_fake'], s['saturating_grad_norm'], 's--', ms=3, color=color, mfc='none',
                   label=f'{label}: log(1 − D(G(z)))')
    axes[1].semilogy(s['d_step'], s['d_fake'], 'o-', ms=3, color=color, label=label)
    ratio = np.asarray(s['saturating_grad_norm']) / np.asarray(s['non_saturating_grad_norm'])
    axes[2].loglog(s['d_fake'], ratio, 'o', ms=3, color=color, label=label)
  ref = np.geomspace(min(min(s['d_fake']) for s in stages), 0.5, 50)
  axes[2].loglog(ref, ref / (1 - ref), ':', color='grey',
                 label='D/(1 − D): the ratio for one sample')
  axes[0].set(xlabel='mean D(G(z))', ylabel='‖∇θ L_G‖ (measured)',
              title='generator gradient as D gets better')
  axes[1].set(xlabel='D training steps (G frozen)', ylabel='mean D(G(z))',
              title=f'the D trained against each frozen G ({d_optimizer})')
  axes[2].set(xlabel='mean D(G(z))', ylabel='‖∇θ L_sat‖ / ‖∇θ L_ns‖',
              title='saturating over non-saturating gradient')
  for ax, size in zip(axes, (6.5, 7, 7)):
    ax.legend(fontsize=size)
  axes[0].invert_xaxis()
  axes[2].invert_xaxis()
  _save(fig, path)


def plot_function_panels(path: str, panels, title: str = '') -> None:
  """One column per trained function on the line: its value (top) and slope (bottom) over the
  shaded densities. panels: [{'title', 'x', 'value', 'slope', 'name', 'grad_at_fake',
  'densities': [(density, color)]}]."""
  fig, axes = plt.subplots(2, len(panels), figsize=(5.2 * len(panels), 7), squeeze=False)
  for j, panel in enumerate(panels):
    x, name = panel['x'], panel['name']
    for i, (curve, ylabel) in enumerate(((panel['value'], name), (panel['slope'], f'd{name}/dx'))):
      ax = axes[i, j]
      top = max(float(np.max(np.abs(curve))), 1e-12)
      for density, color in panel['densities']:
        ax.fill_between(x, top * density / density.max(), color=color, alpha=0.12)
      ax.plot(x, curve, color='tab:red' if name == 'D(x)' else 'tab:blue', lw=2)
      ax.set(xlabel='x', ylabel=ylabel, title=panel['title'] if i == 0 else
             f'{ylabel}; mean |{ylabel}| at the fakes = {panel["grad_at_fake"]:.2g}')
  fig.suptitle(title)
  _save(fig, path)


def plot_sample_snapshots(path: str, rows) -> None:
  """Rows of 2-D sample scatters over the data: [(centers, real, [(title, samples), ...])]."""
  cols = max(len(snaps) for _, _, snaps in rows)
  fig, axes = plt.subplots(len(rows), cols, figsize=(2.3 * cols, 2.5 * len(rows)), squeeze=False)
  for row, (centers, real, snaps) in zip(axes, rows):
    span = np.abs(centers).max() * 1.2 + 0.3
    for ax in row:
      ax.axis('off')
    for ax, (title, samples) in zip(row, snaps):
      ax.scatter(real[:, 0], real[:, 1], s=1, c='black', alpha=0.3)
      ax.scatter(samples[:, 0], samples[:, 1], s=1, c='tab:green', alpha=0.3)
      ax.set(xlim=(-span, span), ylim=(-span, span), aspect='equal')
      ax.set_title(title, fontsize=8)
  _save(fig, path)


def plot_mode_coverage(path: str, runs: dict) -> None:
  """Per run, over training steps × modes: the share of samples nearest each mode, the HQ samples
  per mode (log colour), and the modes covered with the top mode's share and the HQ fraction.

  runs: {label: {'step', 'mass' (S, K), 'hq' (S, K), 'modes', 'dominant_share', 'hq_fraction',
  'num_samples'}}.
  """
  fig, axes = plt.subplots(len(runs), 3, figsize=(17, 3.6 * len(runs)), squeeze=False,
                           gridspec_kw={'width_ratios': (1, 1, 0.8)})
  for row, (label, r) in zip(axes, runs.items()):
    steps = np.asarray(r['step'])
    half = (steps[1] - steps[0]) / 2 if len(steps) > 1 else 0.5
    k = len(r['mass'][0])
    extent = (steps[0] - half, steps[-1] + half, k - 0.5, -0.5)
    im = row[0].imshow(np.asarray(r['mass']).T, aspect='auto', cmap='Greens', vmin=0, vmax=1,
                       extent=extent, interpolation='nearest')
    fig.colorbar(im, ax=row[0], label='share of samples')
    im = row[1].imshow(np.asarray(r['hq']).T + 1, aspect='auto', cmap='magma_r',
                       norm=matplotlib.colors.LogNorm(1, r['num_samples']), extent=extent,
                       interpolation='nearest')
    fig.colorbar(im, ax=row[1], label='HQ samples + 1 (log)')
    for ax, what in zip(row[:2], ('share of samples nearest each mode', 'HQ samples per mode')):
      ax.set(xlabel='training step', ylabel='mode (index in data.centers)',
             title=f'{label}: {what}')
    row[2].plot(steps, r['modes'], 'o-', ms=3, color='tab:purple')
    row[2].set(xlabel='training step', ylim=(0, k + 0.5), title=f'{label}: coverage')
    row[2].set_ylabel('modes covered (≥ 1 HQ sample)', color='tab:purple')
    twin = row[2].twinx()
    twin.plot(steps, 100 * np.asarray(r['dominant_share']), '--', color='tab:green',
              label='share of the top mode')
    twin.plot(steps, 100 * np.asarray(r['hq_fraction']), ':', color='tab:orange',
              label='HQ samples')
    twin.set(ylabel='% of samples', ylim=(0, 102))
    twin.legend(fontsize=7, loc='center right')
  _save(fig, path)
