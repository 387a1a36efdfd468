import pytest
import torch

from models import MODELS, build_model, count_parameters
from recipes import RECIPES


@pytest.mark.parametrize("name, params", [("small", 62_006), ("large", 1_982_602),
                                          ("resnet18", 11_173_962), ("fast", 1_972_792)])
def test_parameter_counts_and_output_shape(name, params):
    model = build_model(name)
    assert count_parameters(model) == params
    assert model(torch.zeros(3, 3, 32, 32)).shape == (3, 10)


def test_layer_names_people_hook():
    resnet = build_model("resnet18")
    names = dict(resnet.named_children())
    for layer in ("conv1", "layer1", "layer2", "layer3", "layer4", "fc"):
        assert layer in names
    assert "maxpool" not in names
    assert resnet.conv1.kernel_size == (3, 3) and resnet.conv1.stride == (1, 1)
    assert [len(getattr(resnet, f"layer{i}")) for i in range(1, 5)] == [2, 2, 2, 2]
    for lenet in (build_model("small"), build_model("large")):
        for layer in ("conv1", "conv2", "fc1", "fc2", "fc3"):
            assert hasattr(lenet, layer)
    assert set(RECIPES) == set(MODELS)


def test_wide_lenet_layer_sizes():
    m = build_model("large")
    assert (m.conv1.in_channels, m.conv1.out_channels, m.conv2.out_channels) == (3, 64, 128)
    assert (m.fc1.in_features, m.fc1.out_features, m.fc2.out_features, m.fc3.out_features) == (3200, 512, 256, 10)


def test_resnet_stage_shapes():
    m = build_model("resnet18").eval()
    seen = {}
    for name in ("conv1", "layer1", "layer2", "layer3", "layer4"):
        m.get_submodule(name).register_forward_hook(lambda mod, i, o, n=name: seen.__setitem__(n, o.shape))
    m(torch.zeros(1, 3, 32, 32))
    assert seen == {"conv1": (1, 64, 32, 32), "layer1": (1, 64, 32, 32), "layer2": (1, 128, 16, 16),
                    "layer3": (1, 256, 8, 8), "layer4": (1, 512, 4, 4)}


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vgg")
