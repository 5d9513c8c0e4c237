"""Architectures of the zoo's reference models (stable public API).

* :class:`SmallCNN` -- a two-block convolutional classifier returning logits.
* :class:`SmallMLP` -- a fully connected classifier, the zoo's independent judge of
  counterfactuals (another architecture than the classifiers it judges).
* :class:`DCGANGenerator` / :class:`DCGANDiscriminator` -- a DCGAN pair for 28x28 grey images,
  with BatchNorm as in the GANchors and MimicGAN papers.
"""

from __future__ import annotations

import torch
from torch import nn

from captum_latent.persistence import SaveLoadMixin


class SmallCNN(SaveLoadMixin, nn.Module):
    """Two conv blocks and a two-layer head; maps ``(B, C, H, W)`` images to ``(B, K)`` logits.

    The convolutional part is ``self.features`` (named blocks ``block1``, ``block2``) and the
    head is ``self.head`` whose last layer, ``self.head.out``, is the top (logit) layer.

    Parameters
    ----------
    in_channels : int
        Image channels.
    num_classes : int
        Number of output logits.
    image_size : int
        Height (= width) of the input images.
    width : int, default 32
        Channels of the first block (the second has twice as many).
    hidden : int, default 128
        Units of the hidden fully connected layer.

    Examples
    --------
    >>> import torch
    >>> from captum_latent.zoo import SmallCNN
    >>> SmallCNN(1, 10, 28)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self, in_channels: int, num_classes: int, image_size: int, width: int = 32,
        hidden: int = 128,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.image_size = image_size

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(),
                nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU(),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential()
        self.features.add_module("block1", block(in_channels, width))
        self.features.add_module("block2", block(width, 2 * width))
        side = image_size // 4
        self.head = nn.Sequential()
        self.head.add_module("flatten", nn.Flatten())
        self.head.add_module("fc", nn.Linear(2 * width * side * side, hidden))
        self.head.add_module("relu", nn.ReLU())
        self.head.add_module("dropout", nn.Dropout(0.25))
        self.head.add_module("out", nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SmallMLP(SaveLoadMixin, nn.Module):
    """Fully connected classifier ``(B, C, H, W)`` to ``(B, K)`` logits: flatten, two ReLU
    layers, output layer.

    Parameters
    ----------
    in_features : int
        ``C * H * W``.
    num_classes : int
        Number of output logits.
    hidden : tuple of int, default (256, 128)
        Units of the hidden layers.

    Examples
    --------
    >>> import torch
    >>> from captum_latent.zoo import SmallMLP
    >>> SmallMLP(784, 10)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(self, in_features: int, num_classes: int,
                 hidden: tuple[int, ...] = (256, 128)) -> None:
        super().__init__()
        self.in_features = in_features
        self.num_classes = num_classes
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DCGANGenerator(SaveLoadMixin, nn.Module):
    """DCGAN generator for ``1 x 28 x 28`` images in [0, 1] from ``N(0, I)`` codes.

    ``Linear -> BatchNorm1d -> ReLU -> (128, 7, 7) -> ConvT -> BatchNorm2d -> ReLU -> (64, 14, 14)
    -> ConvT -> sigmoid -> (1, 28, 28)``.

    Parameters
    ----------
    latent_dim : int, default 32
        Size of the latent code ``z``.
    base_channels : int, default 64
        Channels at 14x14 (twice as many at 7x7). The zoo's trained generator uses 32.

    Examples
    --------
    >>> import torch
    >>> from captum_latent.zoo import DCGANGenerator
    >>> g = DCGANGenerator(latent_dim=32).eval()
    >>> g(torch.randn(4, 32)).shape
    torch.Size([4, 1, 28, 28])
    """

    def __init__(self, latent_dim: int = 32, base_channels: int = 64) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        self.latent_dim = latent_dim
        c = base_channels
        self.project = nn.Sequential(
            nn.Linear(latent_dim, 2 * c * 7 * 7, bias=False),
            nn.BatchNorm1d(2 * c * 7 * 7),
            nn.ReLU(),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )
        self._c = c

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the generated images."""
        return (1, 28, 28)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(z.shape[0], 2 * self._c, 7, 7)
        return self.upsample(h)


class DCGANDiscriminator(SaveLoadMixin, nn.Module):
    """DCGAN discriminator for ``1 x 28 x 28`` images; returns one real/fake logit per image.

    Examples
    --------
    >>> import torch
    >>> from captum_latent.zoo import DCGANDiscriminator
    >>> DCGANDiscriminator()(torch.rand(3, 1, 28, 28)).shape
    torch.Size([3])
    """

    def __init__(self, base_channels: int = 64) -> None:
        super().__init__()
        c = base_channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * c),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        self.out = nn.Linear(2 * c * 7 * 7, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x)).squeeze(1)
