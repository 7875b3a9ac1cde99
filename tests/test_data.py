"""rlopt.data: torchvision datasets read from their real on-disk layouts, digits, polynomial, splits."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_cfg
from dataset_files import (
    bypass_cifar_md5,
    write_cifar10_batches,
    write_cifar100_files,
    write_idx,
    write_mnist_raw,
)
from rlopt.data import load_dataset
from rlopt.data.sources import polynomial_arrays
from rlopt.errors import UserError

CPU = torch.device("cpu")
# The dev machines keep real MNIST in a `shared/data` folder beside the checkout (or above it, for worktrees).
SHARED_DATA = [parent / "shared" / "data" for parent in Path(__file__).resolve().parents[1:]]

# Published per-channel statistics of each training set on [0, 1] pixels.
PUBLISHED_STATS = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def dataset_cfg(name: str, *overrides: str):
    """The composed `dataset` block of `rlopt train dataset=<name> overrides...`."""
    return make_cfg(f"dataset={name}", *overrides, tiny=False).dataset


def local_cfg(name: str, root: Path, *overrides: str):
    """A torchvision dataset read offline from `root`."""
    return dataset_cfg(name, f"dataset.root={root}", "dataset.download=false", *overrides)


def first_pixels(x: torch.Tensor) -> np.ndarray:
    """The index each written image carries in its first pixel (see dataset_files)."""
    return x[:, 0, 0, 0].cpu().numpy().astype(int)


# ---------------------------------------------------------------- MNIST and Fashion-MNIST


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_datasets_load_as_uint8_nchw_with_their_labels(tmp_path, name, folder):
    written = write_mnist_raw(tmp_path, folder, n_train=60, n_test=20)
    data = load_dataset(local_cfg(name, tmp_path, "dataset.val_size=10"), seed=0, device=CPU)

    assert (data.num_outputs, data.input_shape, data.task) == (10, (1, 28, 28), "classification")
    assert data.train.x.shape == (50, 1, 28, 28) and data.val.x.shape == (10, 1, 28, 28)
    assert data.test.x.shape == (20, 1, 28, 28)
    for split in (data.train, data.val, data.test):
        assert split.x.dtype == torch.uint8 and split.y.dtype == torch.long
        assert split.x.device == CPU and split.y.device == CPU
    # Every loaded train/val image is the written one with its own label; val and train partition the set.
    train_idx, val_idx = first_pixels(data.train.x), first_pixels(data.val.x)
    assert sorted([*train_idx, *val_idx]) == list(range(60))
    for split, idx in ((data.train, train_idx), (data.val, val_idx)):
        np.testing.assert_array_equal(split.x[:, 0].numpy(), written["train_images"][idx])
        np.testing.assert_array_equal(split.y.numpy(), written["train_labels"][idx])
    # The test split is the written test set, in order.
    np.testing.assert_array_equal(data.test.x[:, 0].numpy(), written["t10k_images"])
    np.testing.assert_array_equal(data.test.y.numpy(), written["t10k_labels"])


def test_val_split_is_seeded(tmp_path):
    write_mnist_raw(tmp_path, n_train=60, n_test=10)
    cfg = local_cfg("mnist", tmp_path, "dataset.val_size=15")
    a, b, c = (load_dataset(cfg, seed=s, device=CPU) for s in (3, 3, 4))
    assert first_pixels(a.val.x).tolist() == first_pixels(b.val.x).tolist()
    assert first_pixels(a.train.x).tolist() == first_pixels(b.train.x).tolist()
    assert set(first_pixels(a.val.x)) != set(first_pixels(c.val.x))
    assert torch.equal(a.test.x, c.test.x)


def test_train_and_test_subsets(tmp_path):
    write_mnist_raw(tmp_path, n_train=60, n_test=20)
    full = load_dataset(local_cfg("mnist", tmp_path, "dataset.val_size=10"), seed=1, device=CPU)
    sub = load_dataset(local_cfg("mnist", tmp_path, "dataset.val_size=10", "dataset.train_subset=7",
                                 "dataset.test_subset=5"), seed=1, device=CPU)
    assert (len(sub.train), len(sub.val), len(sub.test)) == (7, 10, 5)
    # The subset is taken from the non-validation part; validation does not depend on it.
    assert torch.equal(sub.val.x, full.val.x)
    assert set(first_pixels(sub.train.x)) <= set(first_pixels(full.train.x))
    assert torch.equal(sub.test.x, full.test.x[:5]) and torch.equal(sub.test.y, full.test.y[:5])


@pytest.mark.parametrize("override", ["dataset.train_subset=0", "dataset.test_subset=0", "dataset.test_subset=-3"])
def test_non_positive_subsets_are_refused(tmp_path, override):
    write_mnist_raw(tmp_path, n_train=30, n_test=10)
    key = override.split("=")[0]
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        load_dataset(local_cfg("mnist", tmp_path, "dataset.val_size=5", override), seed=0, device=CPU)


@pytest.mark.parametrize("val_size", [0, 30, 31])
def test_val_size_must_leave_training_examples(tmp_path, val_size):
    write_mnist_raw(tmp_path, n_train=30, n_test=10)
    with pytest.raises(UserError, match=r"dataset\.val_size=.*between 1 and 29"):
        load_dataset(local_cfg("mnist", tmp_path, f"dataset.val_size={val_size}"), seed=0, device=CPU)


def test_val_size_at_the_bounds_is_accepted(tmp_path):
    write_mnist_raw(tmp_path, n_train=30, n_test=10)
    for val_size, n_train in ((1, 29), (29, 1)):
        data = load_dataset(local_cfg("mnist", tmp_path, f"dataset.val_size={val_size}"), seed=0, device=CPU)
        assert (len(data.val), len(data.train)) == (val_size, n_train)


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_normalisation_uses_the_published_constants(tmp_path, name, folder):
    write_mnist_raw(tmp_path, folder, n_train=20, n_test=5)
    data = load_dataset(local_cfg(name, tmp_path, "dataset.val_size=4"), seed=0, device=CPU)
    (mean,), (std,) = PUBLISHED_STATS[name]
    x = data.train.x[:6]
    expected = (x.double() / 255.0 - mean) / std
    torch.testing.assert_close(data.transform(x, train=False).double(), expected, rtol=0, atol=1e-5)
    assert data.transform.augment is False  # MNIST-style data is not cropped or flipped


# ---------------------------------------------------------------- CIFAR-10 and CIFAR-100


def rows_as_nchw(rows: np.ndarray) -> np.ndarray:
    """CIFAR rows (R plane, G plane, B plane of 32x32 each) as N x 3 x 32 x 32."""
    return rows.reshape(-1, 3, 32, 32)


def test_cifar10_loads_every_batch_with_channels_in_order(tmp_path, monkeypatch):
    bypass_cifar_md5(monkeypatch)
    written = write_cifar10_batches(tmp_path, per_batch=8, n_test=12)
    data = load_dataset(local_cfg("cifar10", tmp_path, "dataset.val_size=5"), seed=0, device=CPU)

    assert (data.num_outputs, data.input_shape) == (10, (3, 32, 32))
    assert (len(data.train), len(data.val), len(data.test)) == (35, 5, 12)
    assert data.train.x.dtype == torch.uint8 and data.train.y.dtype == torch.long
    idx = first_pixels(data.train.x)
    np.testing.assert_array_equal(data.train.x.numpy(), rows_as_nchw(written["train_rows"])[idx])
    np.testing.assert_array_equal(data.train.y.numpy(), written["train_labels"][idx])
    assert sorted([*idx, *first_pixels(data.val.x)]) == list(range(40))  # all five batches are read
    np.testing.assert_array_equal(data.test.x.numpy(), rows_as_nchw(written["test_rows"]))
    np.testing.assert_array_equal(data.test.y.numpy(), written["test_labels"])
    assert data.transform.augment is True


def test_cifar100_uses_fine_labels_and_100_classes(tmp_path, monkeypatch):
    bypass_cifar_md5(monkeypatch)
    written = write_cifar100_files(tmp_path, n_train=120, n_test=30)
    data = load_dataset(local_cfg("cifar100", tmp_path, "dataset.val_size=20"), seed=0, device=CPU)

    assert (data.num_outputs, data.input_shape) == (100, (3, 32, 32))
    assert (len(data.train), len(data.val), len(data.test)) == (100, 20, 30)
    idx = first_pixels(data.val.x)
    np.testing.assert_array_equal(data.val.x.numpy(), rows_as_nchw(written["train_rows"])[idx])
    np.testing.assert_array_equal(data.val.y.numpy(), written["train_labels"][idx])
    np.testing.assert_array_equal(data.test.y.numpy(), written["test_labels"])
    assert set(torch.cat([data.train.y, data.val.y]).tolist()) == set(range(100))


@pytest.mark.parametrize("name,writer", [("cifar10", write_cifar10_batches), ("cifar100", write_cifar100_files)])
def test_cifar_normalisation_uses_the_published_constants(tmp_path, monkeypatch, name, writer):
    bypass_cifar_md5(monkeypatch)
    writer(tmp_path)
    data = load_dataset(local_cfg(name, tmp_path, "dataset.val_size=5"), seed=0, device=CPU)
    mean, std = (torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1) for v in PUBLISHED_STATS[name])
    x = data.test.x[:4]
    torch.testing.assert_close(data.transform(x, train=False).double(), (x.double() / 255 - mean) / std,
                               rtol=0, atol=1e-5)


def test_cifar_files_that_are_not_the_published_ones_are_refused(tmp_path):
    """torchvision checks the md5 of every CIFAR file with download=False: tiny or edited files fail it."""
    write_cifar10_batches(tmp_path)
    with pytest.raises(UserError) as err:
        load_dataset(local_cfg("cifar10", tmp_path, "dataset.val_size=5"), seed=0, device=CPU)
    assert str(tmp_path) in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- broken and missing files


def one_line_error_naming(root: Path, cfg) -> str:
    with pytest.raises(UserError) as err:
        load_dataset(cfg, seed=0, device=CPU)
    message = str(err.value)
    assert "\n" not in message and str(root) in message
    return message


def truncate(path: Path, keep: int) -> None:
    """Cut `path` down to its first `keep` bytes."""
    path.write_bytes(path.read_bytes()[:keep])


MNIST_CORRUPTIONS = {
    "truncated_images": lambda raw: truncate(raw / "train-images-idx3-ubyte", 16 + 28 * 28 * 5 + 3),
    "empty_labels": lambda raw: (raw / "t10k-labels-idx1-ubyte").write_bytes(b""),
    "header_only_labels": lambda raw: truncate(raw / "train-labels-idx1-ubyte", 2),
    "bad_magic": lambda raw: (raw / "train-images-idx3-ubyte").write_bytes(
        b"\x00\x00\x08\x07" + (raw / "train-images-idx3-ubyte").read_bytes()[4:]),
    "unknown_type_code": lambda raw: (raw / "train-labels-idx1-ubyte").write_bytes(
        b"\x00\x00\x0a\x01" + (raw / "train-labels-idx1-ubyte").read_bytes()[4:]),
    "int8_images": lambda raw: (raw / "train-images-idx3-ubyte").write_bytes(
        b"\x00\x00\x09\x03" + (raw / "train-images-idx3-ubyte").read_bytes()[4:]),
    "fewer_labels_than_images": lambda raw: write_idx(raw / "train-labels-idx1-ubyte", np.zeros(25, np.uint8)),
    "label_out_of_range": lambda raw: write_idx(raw / "train-labels-idx1-ubyte", np.full(30, 12, np.uint8)),
    "images_as_vectors": lambda raw: write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((10, 784), np.uint8)),
}


@pytest.mark.parametrize("corruption", sorted(MNIST_CORRUPTIONS))
def test_corrupt_idx_files_are_a_user_error(tmp_path, corruption):
    write_mnist_raw(tmp_path, n_train=30, n_test=10)
    MNIST_CORRUPTIONS[corruption](tmp_path / "MNIST" / "raw")
    one_line_error_naming(tmp_path, local_cfg("mnist", tmp_path, "dataset.val_size=5"))


def corrupt_cifar10_batch_2(folder: Path, how: str) -> None:
    """Break data_batch_2 of a written CIFAR-10 copy in one of a few ways."""
    path = folder / "data_batch_2"
    if how == "truncated":
        truncate(path, path.stat().st_size // 2)
    elif how == "not_a_pickle":
        path.write_bytes(b"this is not a pickle")
    elif how == "rows_of_wrong_length":
        with open(path, "wb") as f:
            pickle.dump({"data": np.zeros((8, 3000), np.uint8), "labels": [0] * 8}, f, protocol=2)
    elif how == "no_labels":
        with open(path, "wb") as f:
            pickle.dump({"data": np.zeros((8, 3072), np.uint8)}, f, protocol=2)
    elif how == "label_out_of_range":
        with open(path, "wb") as f:
            pickle.dump({"data": np.zeros((8, 3072), np.uint8), "labels": [10] * 8}, f, protocol=2)


@pytest.mark.parametrize("how", ["truncated", "not_a_pickle", "rows_of_wrong_length", "no_labels", "label_out_of_range"])
def test_corrupt_cifar_files_are_a_user_error_even_past_the_md5_check(tmp_path, monkeypatch, how):
    """Broken files are rejected by the md5 check already (see above); past it, reading them still fails cleanly."""
    bypass_cifar_md5(monkeypatch)
    write_cifar10_batches(tmp_path)
    corrupt_cifar10_batch_2(tmp_path / "cifar-10-batches-py", how)
    one_line_error_naming(tmp_path, local_cfg("cifar10", tmp_path, "dataset.val_size=5"))


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100"])
def test_missing_dataset_offline_names_the_root_and_how_to_provide_it(tmp_path, name):
    root = tmp_path / "nothing_here"
    message = one_line_error_naming(root, local_cfg(name, root, "dataset.val_size=5"))
    assert "dataset.download=true" in message and "dataset.root" in message


def test_one_missing_file_is_reported_like_a_missing_dataset(tmp_path):
    write_mnist_raw(tmp_path, n_train=30, n_test=10)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    message = one_line_error_naming(tmp_path, local_cfg("mnist", tmp_path, "dataset.val_size=5"))
    assert "dataset.download=true" in message


# ---------------------------------------------------------------- digits and polynomial


def test_digits_is_the_real_1797_images_with_a_fixed_test_split():
    from sklearn.datasets import load_digits

    cfg = dataset_cfg("digits")
    a, b = load_dataset(cfg, seed=0, device=CPU), load_dataset(cfg, seed=1, device=CPU)
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert (len(a.val), len(a.test), a.input_shape, a.num_outputs) == (300, 360, (1, 8, 8), 10)
    assert a.train.x.dtype == torch.uint8 and int(a.train.x.max()) <= 16
    # The test split does not move with the seed; validation does.
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.val.x, b.val.x)
    # Every image is one of scikit-learn's with its own label, and the three splits cover the set once.
    digits = load_digits()
    lookup = {img.astype(np.uint8).tobytes(): [] for img in digits.images}
    for img, label in zip(digits.images, digits.target):
        lookup[img.astype(np.uint8).tobytes()].append(int(label))
    seen = []
    for split in (a.train, a.val, a.test):
        for img, label in zip(split.x[:, 0].numpy(), split.y.tolist()):
            assert label in lookup[img.tobytes()]
            seen.append(img.tobytes())
    assert sorted(seen) == sorted(img.astype(np.uint8).tobytes() for img in digits.images)


def test_digits_normalisation_standardises_the_training_pixels():
    data = load_dataset(dataset_cfg("digits"), seed=0, device=CPU)
    x = data.transform(torch.cat([data.train.x, data.val.x]), train=False)
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3


def test_polynomial_inputs_are_the_values_of_the_target_polynomials():
    cfg = dataset_cfg("polynomial")
    data = load_dataset(cfg, seed=0, device=CPU)
    assert data.task == "regression" and (data.input_shape, data.num_outputs) == ((20,), 5)
    assert (len(data.train), len(data.val), len(data.test)) == (256 - 32 - 32, 32, 32)
    points = np.linspace(-2, 2, 20)
    for split in (data.train, data.val, data.test):
        assert split.x.dtype == torch.float32 and split.y.shape == (len(split), 5)
        coeffs = split.y.double().numpy()  # c0 + c1 x + ... + c4 x^4
        values = np.polynomial.polynomial.polyval(points, coeffs.T)  # (N, 20)
        np.testing.assert_allclose(split.x.numpy(), values, rtol=1e-5, atol=1e-5)
    assert data.transform(data.train.x, train=True).equal(data.train.x)  # no scaling, no normalisation


def test_polynomial_coefficients_follow_the_per_degree_scales():
    scales = [1.0, 0.5, 0.2, 0.1, 0.05]
    _, coeffs = polynomial_arrays(20000, scales, 20, -2.0, 2.0, seed=0)
    np.testing.assert_allclose(coeffs.std(0).numpy() / np.array(scales), 1.0, atol=0.03)
    np.testing.assert_allclose(coeffs.mean(0).numpy() / np.array(scales), 0.0, atol=0.03)


def test_polynomial_splits_do_not_depend_on_the_seed_except_validation():
    cfg = dataset_cfg("polynomial")
    a, b = load_dataset(cfg, seed=0, device=CPU), load_dataset(cfg, seed=5, device=CPU)
    assert torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.val.y, b.val.y)
    pool = lambda d: sorted(map(tuple, torch.cat([d.train.y, d.val.y]).tolist()))  # noqa: E731
    assert pool(a) == pool(b)


# ---------------------------------------------------------------- real MNIST


def real_mnist_root() -> Path | None:
    for root in SHARED_DATA:
        if (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
            return root
    return None


needs_real_mnist = pytest.mark.skipif(real_mnist_root() is None,
                                      reason="real MNIST not found under ../shared/data (only on the dev machines)")


@needs_real_mnist
def test_real_mnist_loads_and_small_cnn_learns_it():
    from rlopt.engine import Trainer
    from rlopt.models import build_model
    from rlopt.optim import OptimizerBank

    torch.manual_seed(0)
    root = real_mnist_root()
    # One epoch over 2,000 images (63 Adam steps); dropout off so a single short epoch is enough.
    cfg = make_cfg("dataset=mnist", f"dataset.root={root}", "dataset.download=false", "dataset.train_subset=2000",
                   "dataset.val_size=1000", "model=small_cnn", "model.dropout=false", tiny=False)
    data = load_dataset(cfg.dataset, seed=0, device=CPU)
    assert (len(data.train), len(data.val), len(data.test)) == (2000, 1000, 10000)
    # The published constants are the real training set's statistics.
    pixels = torch.cat([data.train.x, data.val.x]).double() / 255
    (mean,), (std,) = PUBLISHED_STATS["mnist"]
    assert abs(pixels.mean().item() - mean) < 0.01 and abs(pixels.std().item() - std) < 0.01

    model = build_model(cfg.model, "mnist", data.input_shape, data.num_outputs)
    bank = OptimizerBank(model.parameters, ["adam"], cfg.optim)
    trainer = Trainer(model, data, bank, CPU, batch_size=32, eval_batch_size=1000, amp=False, seed=0)
    before = trainer.evaluate(data.val)["acc"]
    trainer.train(trainer.batches_per_epoch)
    after = trainer.evaluate(data.val)["acc"]
    assert before < 0.3 and after > 0.85, (before, after)


@needs_real_mnist
def test_the_idx_writer_produces_the_real_files_headers(tmp_path):
    """The tiny IDX files above start exactly like the published ones (same magic, same dimension fields)."""
    raw = real_mnist_root() / "MNIST" / "raw"
    for name, shape in (("train-images-idx3-ubyte", (60000, 28, 28)), ("t10k-labels-idx1-ubyte", (10000,))):
        write_idx(tmp_path / name, np.zeros(shape, np.uint8))
        header = 4 * (len(shape) + 1)
        assert (tmp_path / name).read_bytes()[:header] == (raw / name).read_bytes()[:header]
        assert (tmp_path / name).stat().st_size == (raw / name).stat().st_size
