"""The four CIFAR-10 networks, built by name from one registry.

    >>> from models import build_model
    >>> build_model("resnet18")(torch.zeros(1, 3, 32, 32)).shape
    torch.Size([1, 10])

- ``small``: the PyTorch CIFAR-10 tutorial's LeNet (62,006 parameters).
- ``large``: the same LeNet, wider (conv 3->64->128, fc 3200->512->256->10;
  1,982,602 parameters).
- ``resnet18``: ResNet-18 for 32x32 inputs (He et al., "Deep Residual Learning
  for Image Recognition", 2015): 3x3 stride-1 stem, no max-pool, BasicBlocks
  [2, 2, 2, 2], 10-way ``fc`` (11,173,962 parameters).
- ``fast``: the small VGG-like network of airbench94 (Jordan, "94% on CIFAR-10 in 3.29
  seconds on a single GPU", arXiv 2404.00498): a 2x2 patch-whitening conv, three
  conv-pool-norm-GELU groups of widths 64/256/256, max-pool, ``fc`` scaled by 1/9
  (1,972,792 parameters).  Its whitening weights come from training images
  (``whitening_weights``), which the training loop passes in.
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


class ScaleFreeBatchNorm(nn.BatchNorm2d):
    """Batch norm without a learned scale: the weight stays 1 (frozen), only the bias trains.

    ``momentum`` here is the weight of the *old* running statistics, as airbench writes it
    (PyTorch's ``momentum`` is the new batch's weight: 1 - that).
    """

    def __init__(self, channels, momentum=0.6, eps=1e-12, learn_scale=False):
        super().__init__(channels, eps=eps, momentum=1 - momentum)
        self.weight.requires_grad_(learn_scale)


class ConvGroup(nn.Module):
    """conv 3x3 -> max-pool 2 -> norm -> GELU -> conv 3x3 -> norm -> GELU; halves the side.

    With ``dirac`` both convs start as the identity on their first ``in`` output channels (Dirac
    init), the rest as PyTorch's default, so at initialisation the group passes its input through;
    ``norm_scale`` lets the norms learn a scale too (both for the ablation).
    """

    def __init__(self, c_in, c_out, dirac=True, norm_scale=False):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = ScaleFreeBatchNorm(c_out, learn_scale=norm_scale)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = ScaleFreeBatchNorm(c_out, learn_scale=norm_scale)
        if dirac:
            with torch.no_grad():
                for conv in (self.conv1, self.conv2):
                    nn.init.dirac_(conv.weight[:conv.in_channels])

    def forward(self, x):                                 # (B, c_in, H, W)
        x = F.gelu(self.norm1(self.pool(self.conv1(x))))  # (B, c_out, H/2, W/2)
        return F.gelu(self.norm2(self.conv2(x)))


class FastNet(nn.Module):
    """airbench94's network: whitening conv, three ``ConvGroup``s, max-pool, scaled ``fc``.

    ``whiten`` is a 2x2 valid conv with bias, 3 -> 24 channels: 12 patch-whitening filters and
    their negatives.  It starts at PyTorch's default; a training run sets it from training
    images (``whitening_weights``) and then keeps its weight fixed.
    """

    def __init__(self, widths=(64, 256, 256), num_classes=10, scale=1 / 9, whiten_kernel=2, dirac=True,
                 norm_scale=False):
        super().__init__()
        whiten_width = 2 * 3 * whiten_kernel ** 2
        self.whiten = nn.Conv2d(3, whiten_width, whiten_kernel, bias=True)
        groups = zip((whiten_width, *widths[:2]), widths)
        self.layer1, self.layer2, self.layer3 = (ConvGroup(i, o, dirac, norm_scale) for i, o in groups)
        self.pool = nn.MaxPool2d(3)
        self.fc = nn.Linear(widths[2], num_classes, bias=False)
        self.scale = scale                                # small logits: a calmer start

    def forward(self, x):                                 # (B, 3, 32, 32)
        x = F.gelu(self.whiten(x))                        # (B, 24, 31, 31)
        x = self.layer3(self.layer2(self.layer1(x)))      # (B, 256, 3, 3)
        x = torch.flatten(self.pool(x), 1)                # (B, 256)
        return self.fc(x) * self.scale                    # (B, num_classes)


@torch.no_grad()
def whitening_weights(images, kernel=2, eps=5e-4):
    """Conv weights that whiten the ``kernel`` x ``kernel`` patches of ``images``.

    images: (N, C, H, W) float, as the network sees them (normalised).  The covariance of every
    patch (C*k*k values, uncentred) has eigenvectors v_i and eigenvalues l_i; filter i is
    v_i / sqrt(l_i + eps), largest eigenvalue first, so its outputs over these patches have
    variance l_i / (l_i + eps) ~ 1 and no correlation between filters.  The second half of the
    filters is the first half negated, so a GELU after the conv keeps both signs.
    Returns (2*C*k*k, C, k, k) float32.
    """
    c = images.shape[1]
    patches = images.float().unfold(2, kernel, 1).unfold(3, kernel, 1)       # (N, C, H', W', k, k)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * kernel * kernel)   # (N*H'*W', C*k*k)
    covariance = patches.T @ patches / len(patches)                          # (C*k*k, C*k*k)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)                # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    filters = (eigenvectors / torch.sqrt(eigenvalues + eps)).T.reshape(-1, c, kernel, kernel)
    return torch.cat([filters, -filters])


def small_lenet():
    return LeNet(6, 16, 120, 84)


def large_lenet():
    return LeNet(64, 128, 512, 256)


def resnet18():
    return ResNet(BasicBlock, [2, 2, 2, 2])


def fast(dirac=True, norm_scale=False, logit_scale=1 / 9):
    return FastNet(scale=logit_scale, dirac=dirac, norm_scale=norm_scale)


MODELS = {"small": small_lenet, "large": large_lenet, "resnet18": resnet18, "fast": fast}


def build_model(name, **architecture):
    """Return a freshly initialised network; ``name`` is a key of ``MODELS``; ``architecture``:
    its builder's shape switches (the fast network's ``dirac``, ``norm_scale``, ``logit_scale``,
    which runs set through ``recipes.Config.architecture``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name](**architecture)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())
