"""Model registry: project models, torchvision classifiers and import paths.

Every project model is a plain ``nn.Module`` without data-dependent control flow, so
``torch.fx.symbolic_trace`` turns it into the graph the analysis reads. Models are
always randomly initialised: nothing here loads weights.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
from typing import Callable

import torch
from torch import nn

from netgraph.errors import NetgraphError
from netgraph.text import error_line, first_line

Shape = tuple[int, ...]

_MNIST_SHAPE: Shape = (1, 28, 28)
_CIFAR_SHAPE: Shape = (3, 32, 32)
_IMAGENET_SHAPE: Shape = (3, 224, 224)
# Torchvision models whose input size differs from ImageNet's usual 224.
_TORCHVISION_SHAPES: dict[str, Shape] = {"inception_v3": (3, 299, 299)}
# Without auxiliary heads these return a plain tensor in training mode too, and an
# explicit init silences torchvision's warning about its future default.
_TORCHVISION_KWARGS: dict[str, dict] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


# --- building blocks -------------------------------------------------------------


def _kaiming_init(model: nn.Module) -> nn.Module:
    """He initialisation for convolutions, as torchvision's ResNet and VGG use."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    # No conv bias: the following BatchNorm's shift makes it redundant.
    return [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    ]


def _image_shape(input_shape: Shape, model: str) -> Shape:
    """Check a convolutional model gets a (channels, height, width) shape."""
    if len(input_shape) != 3:
        raise NetgraphError(f"{model} needs an input shape (C, H, W), got {input_shape}")
    return input_shape


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Flatten, then Linear+ReLU between consecutive sizes (no ReLU after the last)."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


# --- project models --------------------------------------------------------------


def lenet300(num_classes: int, input_shape: Shape) -> nn.Module:
    """LeNet-300-100 (LeCun et al. 1998), the classic pruning benchmark MLP."""
    return _mlp([math.prod(input_shape), 300, 100, num_classes])


def mlp(num_classes: int, input_shape: Shape) -> nn.Module:
    """A two-hidden-layer MLP, small enough for fast tests."""
    return _mlp([math.prod(input_shape), 64, 64, num_classes])


class LeNet5(nn.Module):
    """LeNet-5 with ReLU and max pooling; the first conv is padded so 28x28 works."""

    def __init__(self, num_classes: int, input_shape: Shape) -> None:
        super().__init__()
        channels = _image_shape(input_shape, "lenet5")[0]
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = _mlp([self._flat_size(input_shape), 120, 84, num_classes])

    def _flat_size(self, input_shape: Shape) -> int:
        """Feature size after the conv stack, found by a dry run on zeros."""
        try:
            with torch.no_grad():
                return self.features(torch.zeros(1, *input_shape)).numel()
        except RuntimeError as err:
            raise NetgraphError(f"lenet5: input shape {input_shape} is too small") from err

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class SmallCNN(nn.Module):
    """Three conv+BN+ReLU blocks, global pooling and one Linear: a fast test CNN."""

    def __init__(self, num_classes: int, input_shape: Shape) -> None:
        super().__init__()
        channels = _image_shape(input_shape, "smallcnn")[0]
        self.features = nn.Sequential(
            *_conv_bn_relu(channels, 16),
            *_conv_bn_relu(16, 32, stride=2),
            *_conv_bn_relu(32, 64, stride=2),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(64, num_classes)
        _kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


_VGG_CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
              512, 512, 512, "M", 512, 512, 512, "M"],
}


class CifarVGG(nn.Module):
    """VGG with BatchNorm for 32x32 inputs: conv stack, global pooling, one Linear."""

    def __init__(self, cfg: list[int | str], num_classes: int, input_shape: Shape) -> None:
        super().__init__()
        channels, height, width = _image_shape(input_shape, "vgg")
        min_size = 2 ** cfg.count("M")
        if min(height, width) < min_size:
            raise NetgraphError(f"vgg: input shape {input_shape} is smaller than {min_size}x{min_size}")
        layers: list[nn.Module] = []
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += _conv_bn_relu(channels, int(item))
                channels = int(item)
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, num_classes)
        _kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class SynflowVGG(nn.Module):
    """VGG-BN as in SynFlow's code (Tanaka et al. 2020, ``lottery_vgg``, after OpenLTH).

    It differs from :class:`CifarVGG` where it matters for pruning at init: the convs
    keep their bias, the plan has no pooling after the last block (a 2x2 average pool
    takes the 2x2 map of a 32x32 input to one pixel), and every conv *and* the Linear
    use He-normal init in fan-in mode with zero biases, so global magnitude sees
    their per-layer scales, which decide where it collapses first.
    """

    def __init__(self, cfg: list[int | str], num_classes: int, input_shape: Shape) -> None:
        super().__init__()
        channels = _image_shape(input_shape, "vgg16_bn_synflow")[0]
        layers: list[nn.Module] = []
        for item in cfg:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.BatchNorm2d(int(item)), nn.ReLU()]
                channels = int(item)
        layers.append(nn.AvgPool2d(2))
        self.features = nn.Sequential(*layers)
        # The classifier reads exactly `channels` features: one pixel after the pool.
        pixels = 2 ** (cfg.count("M") + 1)
        if tuple(input_shape[1:]) != (pixels, pixels):
            raise NetgraphError(
                f"vgg16_bn_synflow needs a {pixels}x{pixels} image (its Linear reads one pixel "
                f"of {channels} channels), got input shape {tuple(input_shape)}"
            )
        self.classifier = nn.Linear(channels, num_classes)
        _kaiming_fan_in_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def _kaiming_fan_in_init(model: nn.Module) -> nn.Module:
    """SynFlow's init: He-normal (fan-in, ReLU gain) for every conv and Linear weight,
    zero biases, BatchNorm scale 1 and shift 0."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN layers with a 1x1 conv+BN shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for CIFAR (He et al. 2016): stages of 16/32/64 channels."""

    def __init__(self, blocks_per_stage: int, num_classes: int, input_shape: Shape) -> None:
        super().__init__()
        channels = _image_shape(input_shape, "resnet")[0]
        self.stem = nn.Sequential(*_conv_bn_relu(channels, 16))
        stages: list[nn.Module] = []
        c_in = 16
        for i, c_out in enumerate((16, 32, 64)):
            strides = [1 if i == 0 else 2] + [1] * (blocks_per_stage - 1)
            for stride in strides:
                stages.append(BasicBlock(c_in, c_out, stride))
                c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        _kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


_Factory = Callable[[int, Shape], nn.Module]
_PROJECT: dict[str, tuple[_Factory, Shape]] = {
    "lenet300": (lenet300, _MNIST_SHAPE),
    "lenet5": (LeNet5, _MNIST_SHAPE),
    "mlp": (mlp, _MNIST_SHAPE),
    "smallcnn": (SmallCNN, _MNIST_SHAPE),
    "vgg11_bn_cifar": (functools.partial(CifarVGG, _VGG_CFGS["vgg11"]), _CIFAR_SHAPE),
    "vgg16_bn_cifar": (functools.partial(CifarVGG, _VGG_CFGS["vgg16"]), _CIFAR_SHAPE),
    # SynFlow's plan is VGG-16's without the last max pool
    "vgg16_bn_synflow": (functools.partial(SynflowVGG, _VGG_CFGS["vgg16"][:-1]), _CIFAR_SHAPE),
    "resnet20": (functools.partial(CifarResNet, 3), _CIFAR_SHAPE),
    "resnet56": (functools.partial(CifarResNet, 9), _CIFAR_SHAPE),
}
MODELS = list(_PROJECT)


# --- registry ----------------------------------------------------------------------


@functools.cache
def _torchvision_names() -> tuple[str, ...]:
    import torchvision

    return tuple(torchvision.models.list_models(module=torchvision.models))


def model_names() -> list[str]:
    """Every name :func:`build_model` accepts, besides ``package.module:factory``."""
    return MODELS + list(_torchvision_names())


def default_input_shape(name: str) -> Shape | None:
    """Per-sample input shape a model is designed for; None for import paths."""
    if name in _PROJECT:
        return _PROJECT[name][1]
    if name in _torchvision_names():
        return _TORCHVISION_SHAPES.get(name, _IMAGENET_SHAPE)
    if ":" in name:
        return None
    raise _unknown(name)


def build_model(name: str, num_classes: int = 10, input_shape: Shape | None = None) -> nn.Module:
    """A randomly initialised model ``name`` sized for ``input_shape`` and ``num_classes``.

    Parameters
    ----------
    name : str
        A project model (``lenet300``, ``lenet5``, ``resnet20``, ``vgg16_bn_cifar``...),
        a torchvision classification model name, or ``package.module:factory``.
    num_classes : int
        Outputs of the classifier (passed to a factory that takes ``num_classes``).
    input_shape : sequence of int, optional
        One sample's shape (default: the model's own).

    Returns
    -------
    nn.Module
        Random init: nothing is downloaded.

    Examples
    --------
    >>> import netgraph as ng
    >>> model = ng.build_model("lenet300")
    >>> sum(p.numel() for p in model.parameters())
    266610
    """
    if not (isinstance(num_classes, int) and num_classes >= 1):
        raise NetgraphError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    if name in _PROJECT:
        factory, default_shape = _PROJECT[name]
        return factory(num_classes, tuple(input_shape or default_shape))
    if name in _torchvision_names():
        return _torchvision_model(name, num_classes, input_shape)
    if ":" in name:
        return _imported_model(name, num_classes)
    raise _unknown(name)


def _unknown(name: str) -> NetgraphError:
    return NetgraphError(
        f"unknown model '{name}': choose one of {', '.join(MODELS)}, "
        "a torchvision classification model name (e.g. resnet18), or package.module:factory"
    )


def _torchvision_model(name: str, num_classes: int, input_shape: Shape | None) -> nn.Module:
    import torchvision

    if input_shape is not None and (len(input_shape) != 3 or input_shape[0] != 3):
        raise NetgraphError(f"{name} takes RGB images (3, H, W), got input shape {tuple(input_shape)}")
    kwargs = _TORCHVISION_KWARGS.get(name, {})
    return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)


def _imported_model(path: str, num_classes: int) -> nn.Module:
    """Call the factory at ``package.module:factory``, with ``num_classes`` if it takes it."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise NetgraphError(f"model '{path}' must read package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - a user's module can fail to import in any way
        raise NetgraphError(f"cannot import module '{module_name}' for model '{path}': {error_line(err)}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise NetgraphError(f"module '{module_name}' has no callable '{attr}' (model '{path}')")
    try:
        model = factory(**_factory_kwargs(factory, num_classes, path))
    except NetgraphError:
        raise
    except SystemExit as stop:  # a factory must not end the caller's process
        raise NetgraphError(f"building model '{path}' failed: the factory called sys.exit({stop.code!r})") from None
    except Exception as error:  # noqa: BLE001 - a user's factory fails in its own ways: one line
        raise NetgraphError(f"building model '{path}' failed: {type(error).__name__}: {first_line(error)}") from None
    if not isinstance(model, nn.Module):
        raise NetgraphError(f"'{path}' returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _factory_kwargs(factory: Callable, num_classes: int, path: str) -> dict:
    """``{'num_classes': n}`` if the factory accepts it, else ``{}`` if it takes no arguments."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins have no signature: just call them
        return {}
    for kwargs in ({"num_classes": num_classes}, {}):
        try:
            signature.bind(**kwargs)
        except TypeError:
            continue
        return kwargs
    raise NetgraphError(f"'{path}' needs arguments: point at a factory callable with no arguments")
