"""rlopt.data.transforms: batched on-device normalisation, random crop (padding 4) and flip."""

from __future__ import annotations

import pytest
import torch

from rlopt.data.transforms import DeviceTransform

CPU = torch.device("cpu")
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def cifar_transform(augment: bool = True) -> DeviceTransform:
    return DeviceTransform(mean=MEAN, std=STD, scale=255.0, augment=augment, device=CPU)


def random_images(n: int, seed: int = 0, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def normalise(x01: torch.Tensor) -> torch.Tensor:
    """Reference normalisation of [0, 1] pixels with the per-channel constants."""
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (x01 - mean) / std


def all_crops(image01: torch.Tensor, pad: int = 4) -> dict[tuple[int, int, bool], torch.Tensor]:
    """Every crop a `RandomCrop(size, padding=pad)` + `RandomHorizontalFlip` could produce, by slicing.

    Key: (row offset, column offset, flipped) into the zero-padded (black) image.
    """
    _, h, w = image01.shape
    padded = torch.zeros(image01.shape[0], h + 2 * pad, w + 2 * pad)
    padded[:, pad:pad + h, pad:pad + w] = image01
    crops = {}
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            crops[(dy, dx, False)] = crop
            crops[(dy, dx, True)] = crop.flip(-1)
    return crops


def matching_crops(out: torch.Tensor, image: torch.Tensor) -> list[tuple[int, int, bool]]:
    """The (dy, dx, flipped) whose reference crop, normalised, equals the transform's output image."""
    crops = all_crops(image.float() / 255.0)
    keys = list(crops)
    refs = normalise(torch.stack([crops[k] for k in keys]))
    close = (refs - out[None]).abs().flatten(1).amax(1) < 1e-5
    return [k for k, hit in zip(keys, close.tolist()) if hit]


def test_each_augmented_image_is_exactly_one_padded_crop_maybe_flipped():
    x = random_images(100)
    out = cifar_transform()(x, train=True, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == torch.float32
    found = []
    for i in range(len(x)):
        matches = matching_crops(out[i], x[i])
        assert len(matches) == 1, f"image {i}: {matches}"
        found.append(matches[0])
    # Offsets span the whole range 0..8 on both axes, and about half the images are flipped.
    assert {dy for dy, _, _ in found} == set(range(9)) and {dx for _, dx, _ in found} == set(range(9))
    assert 0.3 < sum(flip for _, _, flip in found) / len(found) < 0.7
    # Some crops really are shifted into the black padding.
    assert any((dy, dx) != (4, 4) for dy, dx, _ in found)


def test_padding_is_black_before_normalisation():
    white = torch.full((64, 3, 32, 32), 255, dtype=torch.uint8)
    out = cifar_transform()(white, train=True, generator=torch.Generator().manual_seed(0))
    black, full = normalise(torch.zeros(1, 3, 1, 1)), normalise(torch.ones(1, 3, 1, 1))
    is_black = (out - black).abs().amax(1) < 1e-5
    is_white = (out - full).abs().amax(1) < 1e-5
    assert bool((is_black | is_white).all()) and bool(is_black.any())
    # No border wider than the padding: the 24x24 centre of every crop is always the image.
    assert bool(is_white[:, 4:28, 4:28].all())


def test_augmentation_follows_the_generator():
    x, t = random_images(32), cifar_transform()
    a = t(x, train=True, generator=torch.Generator().manual_seed(5))
    b = t(x, train=True, generator=torch.Generator().manual_seed(5))
    c = t(x, train=True, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("augment,train", [(True, False), (False, True), (False, False)])
def test_without_augmentation_it_only_normalises(augment, train):
    x = random_images(16)
    out = cifar_transform(augment)(x, train=train, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, normalise(x.float() / 255.0), rtol=0, atol=1e-5)


def test_scale_and_statistics_of_a_single_channel_transform():
    t = DeviceTransform(mean=(0.25,), std=(0.5,), scale=16.0, augment=False, device=CPU)
    x = torch.tensor([[[[0, 4], [8, 16]]]], dtype=torch.uint8)
    expected = torch.tensor([[[[-0.5, 0.0], [0.5, 1.5]]]])
    torch.testing.assert_close(t(x, train=False), expected)


def test_feature_vectors_are_never_cropped_and_pass_through_unnormalised():
    t = DeviceTransform(mean=None, std=None, scale=1.0, augment=True, device=CPU)
    x = torch.randn(8, 20)
    assert torch.equal(t(x, train=True), x)


def test_eval_path_matches_torchvision_to_tensor_and_normalize():
    """The eval path matches torchvision's ToTensor + Normalize on the same uint8 image."""
    from torchvision.transforms import functional as TF

    x = random_images(4)
    ours = cifar_transform(augment=False)(x, train=False)
    theirs = torch.stack([TF.normalize(TF.to_tensor(img.permute(1, 2, 0).numpy()), MEAN, STD) for img in x])
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_padding_matches_torchvision_random_crop_with_fixed_offsets():
    """torchvision's RandomCrop(32, padding=4) pads with 0 and slices; the reference crops do the same."""
    from torchvision.transforms import functional as TF

    image = random_images(1)[0].float() / 255
    crops = all_crops(image)
    padded = TF.pad(image, [4], fill=0)  # what RandomCrop(padding=4) does before slicing
    for dy, dx in ((0, 0), (8, 8), (3, 7)):
        torch.testing.assert_close(crops[(dy, dx, False)], TF.crop(padded, dy, dx, 32, 32))
        torch.testing.assert_close(crops[(dy, dx, True)], TF.hflip(TF.crop(padded, dy, dx, 32, 32)))
