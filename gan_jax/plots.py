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


def save_image_panels(path: str, panels, title: str = '') -> None:
  """Side-by-side image grids [(label, grid)] in one PNG (e.g. the EMA and the raw generator)."""
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4.8), squeeze=False)
  for ax, (label, grid) in zip(axes[0], panels):
    ax.imshow(grid, interpolation='nearest')
    ax.set_title(f'{label} generator')
    ax.axis('off')
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
