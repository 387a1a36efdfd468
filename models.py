"""The three CIFAR-10 networks, built by name from one registry.

    >>> from models import build_model
    >>> build_model("resnet18")(torch.zeros(1, 3, 32, 32)).shape
    torch.Size([1, 10])

- ``small``: the PyTorch CIFAR-10 tutorial's LeNet (62,006 parameters).
- ``large``: the same LeNet, wider (conv 3->64->128, fc 3200->512->256->10;
  1,982,602 parameters).
- ``resnet18``: ResNet-18 for 32x32 inputs (He et al., "Deep Residual Learning
  for Image Recognition", 2015): 3x3 stride-1 stem, no max-pool, BasicBlocks
  [2, 2, 2, 2], 10-way ``fc`` (11,173,962 parameters).
"""
import torch
from torch import nn
import torch.nn.functional as F


class LeNet(nn.Module):
    """LeNet-style CNN: two 5x5 conv + 2x2 max-pool stages, three fc layers."""

    def __init__(self, c1=6, c2=16, f1=120, f2=84, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c1, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * 5 * 5, f1)
        self.fc2 = nn.Linear(f1, f2)
        self.fc3 = nn.Linear(f2, num_classes)

    def forward(self, x):                       # (B, 3, 32, 32)
        x = self.pool(F.relu(self.conv1(x)))    # (B, c1, 14, 14)
        x = self.pool(F.relu(self.conv2(x)))    # (B, c2, 5, 5)
        x = torch.flatten(x, 1)                 # (B, c2 * 25)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)                      # (B, num_classes)


class BasicBlock(nn.Module):
    """Two 3x3 convs with batch norm; identity shortcut, 1x1 projection when the shape changes."""

    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet: 3x3 stem at full resolution, four stages, global average pool, ``fc``."""

    def __init__(self, block, num_blocks, num_classes=10):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(block, 64, num_blocks[0], stride=1)   # (B, 64, 32, 32)
        self.layer2 = self._make_layer(block, 128, num_blocks[1], stride=2)  # (B, 128, 16, 16)
        self.layer3 = self._make_layer(block, 256, num_blocks[2], stride=2)  # (B, 256, 8, 8)
        self.layer4 = self._make_layer(block, 512, num_blocks[3], stride=2)  # (B, 512, 4, 4)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, n, stride):
        layers = []
        for s in [stride] + [1] * (n - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def small_lenet():
    return LeNet(6, 16, 120, 84)


def large_lenet():
    return LeNet(64, 128, 512, 256)


def resnet18():
    return ResNet(BasicBlock, [2, 2, 2, 2])


MODELS = {"small": small_lenet, "large": large_lenet, "resnet18": resnet18}

def build_model(name):
    """Return a freshly initialised network; ``name`` is a key of ``MODELS``."""
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
