"""AlexNet (Krizhevsky et al. 2012) in torchvision's single-tower layout, optionally with the
paper's local response normalisation, plus a small-input (``cifar=True``) variant."""

from .. import nn
from ._common import ImageClassifier, run_fused, torchvision_builder

__all__ = ["AlexNet", "alexnet"]


class AlexNet(ImageClassifier):
    """torchvision's AlexNet: convolutions at ``features.{0,3,6,8,10}`` (64, 192, 384, 256, 256
    maps), 3x3/2 max-pools, adaptive average pool to 6x6, ``classifier`` = Dropout,
    Linear(9216, 4096), ReLU, Dropout, Linear(4096, 4096), ReLU, Linear(4096, num_classes)
    (linears at ``classifier.{1,4,6}``). Layers keep PyTorch's default initialisation.

    ``lrn=True`` inserts the paper's LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2) after the
    first two ReLUs, which shifts the later ``features`` indices (convolutions at
    ``features.{0,4,8,10,12}``), so torchvision weights only load into ``lrn=False``.

    ``cifar=True`` is the small-input variant for 28-32 pixel images: 3x3 stride-1 padded
    convolutions throughout, 2x2/2 max-pools (32 -> 16 -> 8 -> 4 pixels), adaptive average pool
    to 4x4 and a first linear of 256*4*4 = 4096 inputs."""

    def __init__(self, num_classes=1000, in_channels=3, dropout=0.5, lrn=False, cifar=False):
        super().__init__(num_classes, in_channels)
        if cifar:
            stem = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1)
            conv2 = nn.Conv2d(64, 192, kernel_size=3, padding=1)
            pool_kernel, pooled = 2, 4
        else:
            stem = nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2)
            conv2 = nn.Conv2d(64, 192, kernel_size=5, padding=2)
            pool_kernel, pooled = 3, 6

        def after_relu():
            norm = [nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)] if lrn else []
            return [nn.ReLU(inplace=True), *norm, nn.MaxPool2d(kernel_size=pool_kernel, stride=2)]

        self.features = nn.Sequential(
            stem, *after_relu(),
            conv2, *after_relu(),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=pool_kernel, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((pooled, pooled))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * pooled * pooled, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def _forward(self, x):
        # Conv2d -> ReLU -> MaxPool2d and Linear -> ReLU as fused ops (run_fused): 1.15x the step.
        return run_fused(self.classifier, self.avgpool(run_fused(self.features, x)), start_dim=1)


@torchvision_builder
def alexnet(num_classes=1000, in_channels=3, dropout=0.5, lrn=False, cifar=False):
    """AlexNet (61,100,840 parameters for 1000 classes); ``lrn`` and ``cifar``: see ``AlexNet``."""
    return AlexNet(num_classes, in_channels, dropout, lrn, cifar)
