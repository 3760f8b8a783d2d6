import pytest
import torch

from sarise.models import ARCHS, create_model


@pytest.mark.parametrize(
    ("arch", "width", "features"),
    [("resnet18", 64, 512), ("resnet34", 64, 512), ("resnet50", 64, 2048), ("resnet18", 8, 64)],
)
def test_logits_and_pooled_features(arch, width, features):
    model = create_model(arch, width=width, in_chans=1).eval()
    assert model.num_features == features
    with torch.no_grad():
        logits, feats = model(torch.randn(2, 1, 64, 64))
    assert logits.shape == (2, 17)
    assert feats.shape == (2, features)
    # the logits are the linear head applied to the returned features
    torch.testing.assert_close(logits, model.fc(feats))


def test_parameter_counts_match_the_standard_resnets():
    # torchvision's resnet18/34/50 at 1000 classes and 3 input channels
    expected = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}
    for arch, n in expected.items():
        model = create_model(arch, num_classes=1000, in_chans=3)
        assert sum(p.numel() for p in model.parameters()) == n, arch


@pytest.mark.parametrize("in_chans", [1, 3])
def test_input_channels_and_any_image_size(in_chans):
    model = create_model("resnet18", width=8, in_chans=in_chans).eval()
    for size in (32, 96, 129):
        logits, _ = model(torch.randn(1, in_chans, size, size))
        assert logits.shape == (1, 17)
    with pytest.raises(RuntimeError):
        model(torch.randn(1, in_chans + 1, 32, 32))


def test_residual_branches_start_at_zero():
    model = create_model("resnet18", width=8)
    blocks = [b for layer in (model.layer1, model.layer2) for b in layer]
    assert all(torch.count_nonzero(b.bn2.weight) == 0 for b in blocks)
    assert torch.count_nonzero(create_model("resnet18", width=8, zero_init_residual=False)
                               .layer1[0].bn2.weight) > 0  # fmt: skip


def test_unknown_architecture_is_named():
    with pytest.raises(ValueError, match="resnet99"):
        create_model("resnet99")
    assert set(ARCHS) == {"resnet18", "resnet34", "resnet50"}


def test_channels_last_gives_the_same_output():
    torch.manual_seed(0)
    model = create_model("resnet18", width=8).eval()
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        a, fa = model(x)
        model.to(memory_format=torch.channels_last)
        b, fb = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(fa, fb, rtol=1e-4, atol=1e-5)
