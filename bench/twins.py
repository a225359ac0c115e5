"""The PyTorch twins of the benchmarked Mass models: the same layers,
initial-weight-free (PyTorch's own initialisation), the optimizer each
model's train block names, and the extras its loss and step take."""
import torch
import torch.nn.functional as F


def build(kind):
    """(model, optimizer, input shape without the batch, label smoothing,
    gradient-clipping norm or None) for `kind`: "mlp" (spec 01), "wide",
    "cnn" (spec 02) or "resnet18" (spec 03)."""
    if kind == "mlp":
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                    torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                    torch.nn.Linear(256, 10))
        shape = (1, 28, 28)
    elif kind == "wide":
        model = torch.nn.Sequential(torch.nn.Linear(1024, 2048), torch.nn.ReLU(),
                                    torch.nn.Linear(2048, 2048), torch.nn.ReLU(),
                                    torch.nn.Linear(2048, 10))
        shape = (1024,)
    elif kind == "cnn":
        def unit(i, o):
            return [torch.nn.Conv2d(i, o, 3, padding=1, bias=False), torch.nn.BatchNorm2d(o),
                    torch.nn.ReLU()]
        model = torch.nn.Sequential(*unit(1, 32), torch.nn.MaxPool2d(2), *unit(32, 64),
                                    torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                    torch.nn.Linear(3136, 128), torch.nn.ReLU(),
                                    torch.nn.Dropout(0.25), torch.nn.Linear(128, 10))
        shape = (1, 28, 28)
    elif kind == "resnet18":
        import torchvision
        model = torchvision.models.resnet18(num_classes=10)
        shape = (3, 32, 32)
    else:
        raise ValueError(kind)
    if kind == "cnn":
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                              weight_decay=5e-4)
    elif kind == "resnet18":
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    smoothing = 0.05 if kind == "cnn" else 0.0
    clip = 5.0 if kind == "cnn" else None
    return model, opt, shape, smoothing, clip


def train_step(model, opt, x, y, smoothing, clip):
    """One step as the Mass program takes it: cross-entropy (with label
    smoothing), the gradients, clipping to a global norm, the update."""
    loss = F.cross_entropy(model(x), y, label_smoothing=smoothing)
    opt.zero_grad()
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss
