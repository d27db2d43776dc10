"""The replicate-padded 3x3 convolution without a padded copy: the same as nn.Conv2d's own."""

import pytest
import torch
import torch.nn.functional as F

from lowlight_cli.models import replicate_conv
from lowlight_cli.models.replicate_conv import ReplicateConv2d, conv3x3, replicate_conv3x3


def _reference(x, conv):
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), conv.weight, conv.bias)


@pytest.mark.parametrize("shape", [(2, 5, 2, 2), (1, 4, 7, 3), (2, 3, 9, 16)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_frame_recomputed_from_strips_equals_replicate_padding(shape, channels_last):
    generator = torch.Generator().manual_seed(0)
    conv = ReplicateConv2d(shape[1], 6)
    torch.nn.init.normal_(conv.bias, generator=generator)
    x = torch.rand(shape, generator=generator) * 4 - 2  # zero padding would differ at every border
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = _reference(x, conv)
        assert not torch.allclose(F.conv2d(x, conv.weight, conv.bias, padding=1), expected, atol=1e-3)
        assert torch.allclose(replicate_conv3x3(x, conv.weight, conv.bias), expected, atol=1e-6, rtol=0)


def test_module_takes_the_fast_path_on_large_inputs_only_and_matches(monkeypatch):
    calls = []
    real = replicate_conv.replicate_conv3x3
    monkeypatch.setattr(replicate_conv, "replicate_conv3x3", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(replicate_conv, "MIN_ELEMENTS", 3 * 8 * 8)
    conv = conv3x3(3, 4, "replicate")
    assert isinstance(conv, ReplicateConv2d)
    small, large = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 8, 8)
    with torch.inference_mode():
        conv(small)
        assert calls == []
        assert torch.allclose(conv(large), _reference(large, conv), atol=1e-6, rtol=0)
        assert calls == [1]
    # training: autograd sees nn.Conv2d's own computation
    out = conv(large)
    assert calls == [1] and out.requires_grad
    state = conv.state_dict()
    plain = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="replicate")
    plain.load_state_dict(state)  # the same parameters and keys as nn.Conv2d
    assert torch.equal(plain(large), out)


def test_other_padding_modes_are_plain_convolutions():
    assert type(conv3x3(3, 4, "zeros")) is torch.nn.Conv2d
    assert conv3x3(3, 4, "reflect").padding_mode == "reflect"
