"""CPU inference is deterministic by construction, and each cause of other bits is named.

sarise's claim is that features are the same bit for bit whatever the batch size, the
threads, the workers or where a run was killed. Each test varies one of them on its own,
so a machine whose kernels behave otherwise fails here, in the test that names the cause,
rather than in the integration tests that compare whole runs.
"""

import numpy as np
import pytest
import torch

from sarise.features import CPU_BATCH, embed
from sarise.models import load_model
from sarise.precision import native_bf16, resolve


@pytest.fixture(scope="module")
def model():
    net, _ = load_model()
    return net


@pytest.fixture(scope="module")
def images():
    # stored images are float16 in [0, 1]; 37 is neither a multiple of 16 nor of 7
    rng = np.random.default_rng(0)
    return rng.random((37, 128, 128)).astype(np.float16)


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _in_batches(model, images, batch, **kw):
    parts = [embed(model, images[i : i + batch], batch_size=batch, **kw)
             for i in range(0, len(images), batch)]  # fmt: skip
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _same(a, b, cause):
    for name, x, y in zip(("features", "logits"), a, b, strict=True):
        diff = float(np.abs(x - y).max())
        assert diff == 0.0, f"{name} depend on {cause} on this machine (max difference {diff:.3g})"


def test_the_batch_size_does_not_change_the_bits(model, images):
    ref = embed(model, images, batch_size=256)
    for batch in (1, 2, 7, CPU_BATCH, 64):
        _same(ref, embed(model, images, batch_size=batch), f"the batch size ({batch})")


def test_the_calls_an_array_is_split_into_do_not_change_the_bits(model, images):
    # extraction calls the model once per store chunk: a chunk of 4 vs one of 37
    ref = embed(model, images)
    for chunk in (1, 4, 7, 20):
        _same(ref, _in_batches(model, images, chunk), f"the chunking ({chunk} images per call)")


def test_an_images_neighbours_in_its_micro_batch_do_not_change_its_bits(model, images):
    ref = embed(model, images)
    order = np.random.default_rng(1).permutation(len(images))
    feats, logits = embed(model, images[order])
    back = np.argsort(order)
    _same(ref, (feats[back], logits[back]), "the other images of a micro-batch and the padding")


def test_the_thread_count_does_not_change_the_bits(model, images, threads):
    torch.set_num_threads(1)
    ref = embed(model, images)
    for n in (2, 3):
        torch.set_num_threads(n)
        _same(ref, embed(model, images), f"torch's intra-op thread count ({n} vs 1)")


def test_the_weights_layout_is_fixed_by_embed(images):
    # a model fresh from disk (NCHW weights) and one already in channels_last give one result
    fresh, _ = load_model()
    converted, _ = load_model()
    converted.to(memory_format=torch.channels_last)
    _same(embed(converted, images), embed(fresh, images), "the weights' memory layout")


def test_embed_follows_changed_weights_and_leaves_the_model_as_it_was(images):
    # embed runs a BatchNorm-folded copy of the model, built once: it must be rebuilt when
    # the weights change (a training step, load_state_dict), and the model itself stays a
    # trainable network with its BatchNorm, its layout and its mode
    model, _ = load_model()
    model.train()
    x = images[:4]
    before = embed(model, x)
    assert model.training and model.conv1.weight.is_contiguous()
    assert isinstance(model.bn1, torch.nn.BatchNorm2d) and model.conv1.bias is None
    _same(before, embed(model, x), "a second call on the same weights")
    with torch.no_grad():
        model.layer1[0].conv1.weight.mul_(1.5)
        model.bn1.running_mean.add_(0.1)
    changed = embed(model, x)
    assert not np.array_equal(changed[0], before[0])
    fresh, _ = load_model()
    with torch.no_grad():
        fresh.layer1[0].conv1.weight.mul_(1.5)
        fresh.bn1.running_mean.add_(0.1)
    _same(changed, embed(fresh, x), "the same changed weights in a fresh model")
    model.load_state_dict(load_model()[0].state_dict())
    _same(before, embed(model, x), "the weights loaded back")


def test_precision_auto_follows_the_cpu_and_bf16_stays_close_to_fp32(model, images):
    assert resolve("auto", "cuda") == "bf16"
    assert resolve("auto", "cpu") == ("bf16" if native_bf16() else "fp32")
    x = images[:16]
    f32, _ = embed(model, x, precision="fp32")
    f16, l16 = embed(model, x, precision="bf16")
    again = embed(model, x, precision="bf16")
    _same((f16, l16), again, "a rerun in bf16")
    cos = (f32 * f16).sum(1) / np.linalg.norm(f32, axis=1) / np.linalg.norm(f16, axis=1)
    assert cos.min() >= 0.99, cos.min()
    assert not np.array_equal(f32, f16)  # the two precisions are really different paths
    with pytest.raises(ValueError, match="unknown precision"):
        resolve("fp16", "cpu")
