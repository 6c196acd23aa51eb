"""Tests of ssl_course.data.augment: batched, per-image, seedable augmentations."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from ssl_course.data import augment as A
from ssl_course.data.augment import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    contrastive_augment,
    denormalize,
    multicrop_augment,
    normalize,
    strong_augment,
    weak_augment,
)
from ssl_course.data.synthetic import synthetic_dataset

PIPELINES = {
    "weak": weak_augment,
    "contrastive": contrastive_augment,
    "strong": strong_augment,
    "multicrop": multicrop_augment,
}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
EPS = 1e-4


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """16 varied uint8 images [16, 3, 32, 32] (synthetic, so no download is needed)."""
    return synthetic_dataset(num_per_class=2, seed=1)[0][:16]


def gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def pixels(x: torch.Tensor) -> torch.Tensor:
    """Normalised output back to [0, 1]."""
    return denormalize(x)


# ---------------------------------------------------------------------------------------------
# Contract: shapes, dtype, device, seeding, ranges
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(PIPELINES))
def test_output_contract(name, device, images):
    x = images.to(device)
    out = PIPELINES[name](x, gen(0, device))
    size = 18 if name == "multicrop" else 32
    assert out.shape == (16, 3, size, size) and out.dtype == torch.float32 and out.device == x.device
    values = pixels(out)
    assert values.min() >= -EPS and values.max() <= 1 + EPS


@pytest.mark.parametrize("name", list(PIPELINES))
def test_seeding(name, images):
    fn = PIPELINES[name]
    a, b = fn(images, gen(3)), fn(images, gen(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, fn(images, gen(4)))
    torch.manual_seed(0)
    c = fn(images)                                   # generator=None: the global RNG
    torch.manual_seed(0)
    assert torch.equal(c, fn(images))


@pytest.mark.parametrize("name", list(PIPELINES))
def test_per_image_randomness(name, images):
    """Copies of one image in a batch get different augmentations."""
    same = images[:1].expand(8, -1, -1, -1).contiguous()
    out = PIPELINES[name](same, gen(0))
    distinct = {tuple(o.flatten()[::7].tolist()) for o in out}
    assert len(distinct) >= 6


def test_float_input_matches_uint8(images):
    a = weak_augment(images, gen(1))
    b = weak_augment(images.float() / 255, gen(1))
    assert torch.allclose(a, b, atol=1e-5)
    a = contrastive_augment(images, gen(1))
    b = contrastive_augment(images.float() / 255, gen(1))
    assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(3, 32, 32, dtype=torch.uint8), r"\[B, 3, H, W\]"),
    (torch.zeros(2, 1, 32, 32, dtype=torch.uint8), r"\[B, 3, H, W\]"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.int64), "uint8"),
])
def test_input_errors(bad, match):
    for fn in PIPELINES.values():
        with pytest.raises(ValueError, match=match):
            fn(bad)


def test_argument_errors(images):
    with pytest.raises(ValueError, match="pad"):
        weak_augment(images, pad=40)
    with pytest.raises(ValueError, match="crop_scale"):
        contrastive_augment(images, crop_scale=(0.8, 0.2))
    with pytest.raises(ValueError, match="gray_prob"):
        contrastive_augment(images, gray_prob=1.5)
    with pytest.raises(ValueError, match="magnitude"):
        strong_augment(images, magnitude=3.0)
    with pytest.raises(ValueError, match="ops must be"):
        strong_augment(images, ops=["rotate", "mixup"])


def test_normalize_roundtrip(images):
    x = normalize(images)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    assert torch.allclose(x, (images.float() / 255 - mean) / std, atol=1e-6)
    assert torch.allclose(denormalize(x), images.float() / 255, atol=1e-6)
    assert torch.allclose(denormalize(x[0]), images[0].float() / 255, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Weak augmentation: exact crops and flips
# ---------------------------------------------------------------------------------------------

def test_weak_is_a_crop_of_the_reflect_padded_image(images):
    out = (pixels(weak_augment(images, gen(2))) * 255).round().to(torch.uint8)
    padded = F.pad(images.float(), (4, 4, 4, 4), mode="reflect").to(torch.uint8)
    for i in range(len(images)):
        crops = [padded[i, :, dy:dy + 32, dx:dx + 32] for dy in range(9) for dx in range(9)]
        candidates = crops + [c.flip(-1) for c in crops]
        assert any(torch.equal(out[i], c) for c in candidates), f"image {i} is not a padded crop"


def test_weak_flip_only(images):
    out = (pixels(weak_augment(images, gen(0), pad=0)) * 255).round().to(torch.uint8)
    flipped = [torch.equal(o, x.flip(-1)) for o, x in zip(out, images)]
    kept = [torch.equal(o, x) for o, x in zip(out, images)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert any(flipped) and any(kept)
    plain = weak_augment(images, gen(0), pad=0, flip=False)
    assert torch.allclose(plain, normalize(images))


def test_weak_offsets_vary(images):
    """With many copies, crops cover many of the 81 offsets (per-image offsets)."""
    same = images[:1].expand(200, -1, -1, -1).contiguous()
    out = weak_augment(same, gen(0), flip=False)
    assert len({tuple(o[0, 10, :].tolist()) for o in out}) > 30


# ---------------------------------------------------------------------------------------------
# Contrastive / multi-crop
# ---------------------------------------------------------------------------------------------

def test_contrastive_identity_limit(images):
    """Whole-image crops without colour changes give the image or its mirror image."""
    out = pixels(contrastive_augment(images, gen(0), crop_scale=(1.0, 1.0), jitter_prob=0.0, gray_prob=0.0))
    x = images.float() / 255
    for o, xi in zip(out, x):
        assert torch.allclose(o, xi, atol=1e-5) or torch.allclose(o, xi.flip(-1), atol=1e-5)


def test_contrastive_grayscale(images):
    out = pixels(contrastive_augment(images, gen(0), gray_prob=1.0))
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-5) and torch.allclose(out[:, 1], out[:, 2], atol=1e-5)
    some = pixels(contrastive_augment(images.repeat(4, 1, 1, 1), gen(0)))
    gray = (some[:, 0] - some[:, 1]).abs().amax(dim=(1, 2)) < 1e-5
    assert 0 < gray.sum() < len(gray)                   # p = 0.2: some, not all


def test_contrastive_crops_zoom_in(images):
    """Small crop scales remove most of the image: fewer distinct values survive than in the input."""
    out = pixels(contrastive_augment(images, gen(0), crop_scale=(0.05, 0.05), jitter_prob=0.0, gray_prob=0.0))
    full = images.float() / 255
    assert (out.std(dim=(2, 3)) < full.std(dim=(2, 3)) + 1e-6).float().mean() > 0.5


def test_multicrop_size_parameter(images):
    out = multicrop_augment(images, gen(0), size=16, scale=(0.1, 0.3))
    assert out.shape == (16, 3, 16, 16)


# ---------------------------------------------------------------------------------------------
# Colour ops agree with torchvision's functional implementations
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ours, theirs, factor", [
    (A._adjust_brightness, TF.adjust_brightness, 1.3),
    (A._adjust_contrast, TF.adjust_contrast, 0.6),
    (A._adjust_saturation, TF.adjust_saturation, 1.4),
    (A._adjust_hue, TF.adjust_hue, 0.1),
    (A._adjust_hue, TF.adjust_hue, -0.37),
])
def test_jitter_ops_match_torchvision(ours, theirs, factor, images):
    x = images[:4].float() / 255
    got = ours(x, torch.full((4,), factor))
    want = torch.stack([theirs(xi, factor) for xi in x])
    assert torch.allclose(got, want, atol=1e-4)


def _awkward_pixels() -> torch.Tensor:
    """Float images [6, 3, 8, 8] full of the cases a hue formula gets wrong: gray, black, white,
    ties between the largest (or smallest) channels, pure primaries, and random colours."""
    gen_ = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (6, 3, 8, 8), generator=gen_).float() / 255
    x[0] = x[0, :1]                                         # gray (r = g = b)
    x[1, :, :4] = 0.0                                       # black
    x[1, :, 4:] = 1.0                                       # white
    x[2, 1] = x[2, 0]                                       # red = green
    x[3, 2] = x[3, 1]                                       # green = blue
    x[4, 2] = x[4, 0]                                       # red = blue
    x[5, :, 0, :3] = torch.eye(3)                           # pure red, green, blue
    return x


@pytest.mark.parametrize("shift", [0.0, 0.05, -0.2, 0.37, 0.5, -0.5])
def test_hue_matches_torchvision_on_awkward_pixels(shift):
    x = _awkward_pixels()
    got = A._adjust_hue(x, torch.full((len(x),), shift))
    want = torch.stack([TF.adjust_hue(xi, shift) for xi in x])
    assert torch.allclose(got, want, atol=2e-6)
    assert torch.equal(got[0], x[0])                        # gray has no hue: unchanged exactly


def test_hue_shift_per_image():
    x = _awkward_pixels()
    shifts = torch.tensor([0.1, -0.3, 0.25, 0.0, 0.45, -0.05])
    got = A._adjust_hue(x, shifts)
    want = torch.stack([TF.adjust_hue(xi, float(s)) for xi, s in zip(x, shifts)])
    assert torch.allclose(got, want, atol=2e-6)


@pytest.mark.parametrize("size", [(32, 32), (18, 18), (20, 40)])
def test_resized_crop_equals_grid_sample(images, size):
    """The separable matrix-product crop is grid_sample(bilinear, border) on an axis-aligned grid."""
    x = images.float() / 255
    theta = A._random_resized_crop_theta(len(x), 32, 32, (0.05, 1.0), (0.5, 2.0), 0.5, gen(4), x.device)
    assert (theta[:, 0, 0] < 0).any() and (theta[:, 0, 0] > 0).any()               # flips and not
    grid = F.affine_grid(theta, [len(x), 3, *size], align_corners=False)
    want = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    assert torch.allclose(A._resized_crop(x, theta, size), want, atol=1e-5)


def test_color_jitter_equals_a_per_image_loop(images):
    """The batched jitter (one blend per slot, hue on its rows) equals torchvision's functional ops
    applied image by image in each image's own random order, from the same random draws."""
    x = (images.float() / 255)[:12]
    b, c, s, h, p = 0.4, 0.4, 0.4, 0.1, 0.8
    got = A.color_jitter(x, gen(9), b, c, s, h, p=p)
    u = torch.rand((len(x), 9), generator=gen(9))            # the draws color_jitter documents
    ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    ranges = [b, c, s, h]
    want = []
    for image, draws in zip(x, u):
        if draws[8] < p:
            for op_id in draws[4:8].argsort().tolist():
                amount = ranges[op_id] * (2 * float(draws[op_id]) - 1)
                image = ops[op_id](image, amount if op_id == 3 else 1 + amount)
        want.append(image)
    want = torch.stack(want)
    assert not torch.allclose(want, x)                       # the jitter did something
    # 1e-4, not 1e-6: torchvision's luma uses 0.2989 for red, ours PIL's 0.299 (see _LUMA).
    assert torch.allclose(got, want, atol=1e-4)


def test_color_jitter_leaves_its_input_alone(images):
    x = images.float() / 255
    before = x.clone()
    A.color_jitter(x, gen(0))
    A.random_grayscale(x, gen(0), p=1.0)
    A.normalize(x)
    assert torch.equal(x, before)


def test_strong_ops_match_torchvision(images):
    x8 = images[:4]
    x = x8.float() / 255
    level = torch.full((4,), 1.0)
    assert torch.equal((A._op_equalize(x, level) * 255).round().to(torch.uint8), TF.equalize(x8))
    assert torch.equal((A._op_posterize(x, level) * 255).round().to(torch.uint8), TF.posterize(x8, 4))
    assert torch.allclose(A._op_autocontrast(x, level), TF.autocontrast(x), atol=1e-6)
    assert torch.allclose(A._op_solarize(x, torch.full((4,), 0.4)), TF.solarize(x, 0.6 + 1e-6), atol=1e-6)
    sharp = A._op_sharpness(x, torch.full((4,), 0.5))                   # factor 1.45
    assert torch.allclose(sharp, torch.stack([TF.adjust_sharpness(xi, 1.45) for xi in x]), atol=1e-5)


def test_color_jitter_probability_zero_is_identity(images):
    x = images.float() / 255
    assert torch.equal(A.color_jitter(x, gen(0), p=0.0), x)


# ---------------------------------------------------------------------------------------------
# Strong augmentation
# ---------------------------------------------------------------------------------------------

def test_strong_magnitude_zero_geometry_is_identity(images):
    ops = ["identity", "brightness", "contrast", "color", "sharpness", "rotate", "shear_x", "shear_y",
           "translate_x", "translate_y", "posterize", "solarize"]
    out = strong_augment(images, gen(0), magnitude=0.0, pad=0, flip=False, cutout_size=0, ops=ops)
    assert torch.allclose(out, normalize(images), atol=1e-4)


def test_strong_cutout_square(images):
    x = images.float() / 255
    holes = A.cutout(torch.zeros_like(x), gen(0), size=16, fill=1.0)[:, 0]        # [B, H, W]
    for hole in holes:
        rows, cols = hole.any(1).nonzero()[:, 0], hole.any(0).nonzero()[:, 0]
        assert 0 < len(rows) <= 16 and 0 < len(cols) <= 16
        assert hole.sum() == len(rows) * len(cols)                              # a (clipped) rectangle
        assert hole[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
    assert (holes.sum(dim=(1, 2)) == 256).any()                                 # unclipped ones exist
    out = pixels(strong_augment(images, gen(0), num_ops=0, pad=0, flip=False))
    gray = (out - 0.5).abs().amax(dim=1) < 1e-4
    assert (gray.sum(dim=(1, 2)) >= 64).all()                                   # every image has a hole


def test_strong_changes_images(images):
    out = pixels(strong_augment(images, gen(0), cutout_size=0, pad=0, flip=False))
    changed = (out - images.float() / 255).abs().amax(dim=(1, 2, 3)) > 1e-3
    assert changed.float().mean() > 0.5


# ---------------------------------------------------------------------------------------------
# Generators on another device than the images
# ---------------------------------------------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(PIPELINES))
def test_cpu_generator_with_cuda_images(name, images):
    """A CPU generator gives (nearly) the same augmentations on CUDA as on the CPU."""
    on_cpu = PIPELINES[name](images, gen(0))
    on_gpu = PIPELINES[name](images.cuda(), gen(0))
    assert on_gpu.device.type == "cuda"
    assert (on_gpu.cpu() - on_cpu).abs().gt(1e-3).float().mean() < 0.01


@pytest.mark.parametrize("name", list(PIPELINES))
def test_gpu_style_selection_gives_the_same_images(name, images, monkeypatch):
    """On a GPU, ops chosen per image run on the whole batch and are picked with torch.where
    (no host synchronisation); forced on the CPU, that path must give the gathering path's images."""
    batch = images.repeat(4, 1, 1, 1)
    gathered = PIPELINES[name](batch, gen(5))
    monkeypatch.setattr(A, "_gather_selected", lambda device: False)
    picked = PIPELINES[name](batch, gen(5))
    assert torch.allclose(gathered, picked, atol=1e-5)



# ---------------------------------------------------------------------------------------------
# FixMatch's RandAugmentMC (kekmodel/FixMatch-pytorch dataset/randaugment.py)
# ---------------------------------------------------------------------------------------------

def _pil_randaugment_mc(image, op_ids, levels, applied, signs, cutout_draw, size=16):
    """One image through the reference's PIL calls, with the given draws (an independent oracle:
    PIL.ImageOps / ImageEnhance / Image.transform, as ``fixmatch_augment_pool`` calls them)."""
    import PIL.ImageDraw
    import PIL.ImageEnhance
    import PIL.ImageOps
    from PIL import Image

    img = Image.fromarray(image.permute(1, 2, 0).numpy())
    for op_id, v, use, sign in zip(op_ids, levels, applied, signs):
        if not use:
            continue
        v, s = int(v), float(sign)
        name = list(A.FIXMATCH_OPS)[op_id]
        factor = v * 0.9 / 10 + 0.05
        if name == "autocontrast":
            img = PIL.ImageOps.autocontrast(img)
        elif name in ("brightness", "color", "contrast", "sharpness"):
            enhancer = {"brightness": PIL.ImageEnhance.Brightness, "color": PIL.ImageEnhance.Color,
                        "contrast": PIL.ImageEnhance.Contrast, "sharpness": PIL.ImageEnhance.Sharpness}[name]
            img = enhancer(img).enhance(factor)
        elif name == "equalize":
            img = PIL.ImageOps.equalize(img)
        elif name == "posterize":
            img = PIL.ImageOps.posterize(img, int(v * 4 / 10) + 4)
        elif name == "rotate":
            img = img.rotate(s * int(v * 30 / 10))
        elif name == "solarize":
            img = PIL.ImageOps.solarize(img, 256 - int(v * 256 / 10))
        elif name in ("shear_x", "shear_y"):
            k = s * v * 0.3 / 10
            img = img.transform(img.size, Image.AFFINE, (1, k, 0, 0, 1, 0) if name == "shear_x" else (1, 0, 0, k, 1, 0))
        elif name in ("translate_x", "translate_y"):
            t = int(s * v * 0.3 / 10 * 32)
            matrix = (1, 0, t, 0, 1, 0) if name == "translate_x" else (1, 0, 0, 0, 1, t)
            img = img.transform(img.size, Image.AFFINE, matrix)
    w, h = img.size
    y0, x0 = (int(max(0, float(c) * n - size / 2)) for c, n in zip(cutout_draw, (h, w)))
    img = img.copy()
    PIL.ImageDraw.Draw(img).rectangle((x0, y0, min(w, x0 + size), min(h, y0 + size)), (127, 127, 127))
    return torch.from_numpy(__import__("numpy").asarray(img).copy()).permute(2, 0, 1).float() / 255


def test_fixmatch_augment_equals_the_reference_pil_ops_image_by_image():
    """RandAugmentMC batched on tensors = the reference's PIL ops applied per image from the same
    draws. PIL rounds to 8 bits after every op (we do not) and picks nearest pixels with floor
    where grid_sample rounds, so a few pixels may differ; the rest agree within 2/255."""
    x8 = synthetic_dataset(num_per_class=8, seed=2)[0][:64]
    got = pixels(A.fixmatch_augment(x8, gen(11), pad=0, flip=False))
    g = gen(11)
    torch.rand((64, 3), generator=g)                                  # the (unused) crop/flip draws
    op_ids, levels, applied, signs = A.fixmatch_randaugment_draws(64, 2, g, torch.device("cpu"))
    cutout_draws = torch.rand((64, 2), generator=g)
    want = torch.stack([_pil_randaugment_mc(x8[i], op_ids[i].tolist(), levels[i], applied[i], signs[i],
                                            cutout_draws[i]) for i in range(64)])
    assert set(op_ids.flatten().tolist()) == set(range(14)) and applied.any() and not applied.all()
    assert set(levels.flatten().long().tolist()) == set(range(1, 10))  # randint(1, 10): 1..9
    close = (got - want).abs() <= 2 / 255 + 1e-6
    assert close.float().mean() > 0.99, close.float().mean()
    per_image = close.float().mean(dim=(1, 2, 3))
    assert per_image.min() > 0.9, per_image


def test_fixmatch_cutout_is_the_reference_rectangle():
    holes = A.cutout_abs(torch.zeros(64, 3, 32, 32), gen(0), size=16, fill=1.0)[:, 0]
    sides = {(int(h.any(1).sum()), int(h.any(0).sum())) for h in holes}
    assert (17, 17) in sides                                         # PIL's rectangle includes both ends
    assert all(8 <= r <= 17 and 8 <= c <= 17 for r, c in sides)


def test_fixmatch_augment_contract_and_selection_paths(images, monkeypatch):
    a = A.fixmatch_augment(images, gen(3))
    assert a.shape == images.shape and a.dtype == torch.float32
    assert torch.equal(a, A.fixmatch_augment(images, gen(3)))
    assert not torch.equal(a, A.fixmatch_augment(images, gen(4)))
    same = images[:1].expand(8, -1, -1, -1).contiguous()
    assert len({tuple(o.flatten()[::7].tolist()) for o in A.fixmatch_augment(same, gen(0))}) >= 6
    batch = images.repeat(4, 1, 1, 1)
    gathered = A.fixmatch_augment(batch, gen(5))
    monkeypatch.setattr(A, "_gather_selected", lambda device: False)
    assert torch.allclose(gathered, A.fixmatch_augment(batch, gen(5)), atol=1e-5)
    with pytest.raises(ValueError, match="num_ops"):
        A.fixmatch_augment(images, gen(0), num_ops=-1)
