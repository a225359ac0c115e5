"""Vision models against PyTorch: spec 03 (ResNet-18) has torchvision's
parameter and buffer names and shapes, and weights move both ways with
evaluation-mode logits within 1e-4; the gradients of spec 03 and spec 04
(Inception) are as close to PyTorch's in float64 as PyTorch's own float32
gradients; batch norm's running statistics follow PyTorch's update rule and
serve evaluation."""
import copy
import os
import sys
import unittest

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import masstest  # noqa: E402

SPEC = os.path.join(os.path.dirname(__file__), "..", "lit", "spec", "fixtures")
TOL = 1e-4


def torchvision_resnet18():
    import torchvision
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    # Give every batch norm statistics and an affine map of its own.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        model.train()
        for _ in range(2):
            model(torch.randn(16, 3, 32, 32) * 1.5 + 0.2)
    return model.eval()


def state_of(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def gradient_error(grads, exact):
    """The largest error over a tensor, relative to the larger of that
    tensor's scale and 1% of the largest gradient of the model; the worst
    tensor's error and its name."""
    largest = max(float(np.abs(g).max()) for g in exact.values())
    worst, where = 0.0, None
    for name, g in exact.items():
        scale = max(float(np.abs(g).max()), 0.01 * largest)
        err = float(np.abs(np.asarray(grads[name], np.float64) - g).max()) / scale
        if err > worst:
            worst, where = err, name
    return worst, where


def torch_gradients(model, x, y, dtype):
    """Training-mode gradients of the cross-entropy of `model` on (x, y) in
    `dtype`, by parameter name, as float64 arrays."""
    model = copy.deepcopy(model).to(dtype).train()
    loss = F.cross_entropy(model(torch.tensor(x, dtype=dtype)), torch.tensor(y, dtype=torch.long))
    loss.backward()
    return {k: v.grad.detach().double().numpy() for k, v in model.named_parameters()}


def assert_gradient_parity(test, exe, work, model, x, y):
    """--dump-grads of `exe` with `model`'s weights against PyTorch in
    float64: Mass's error (gradient_error) at most 1.5 times PyTorch's own
    float32 error, and at most 1e-3."""
    masstest.write_npy_dir(work.file("gdata"), {"image": x, "class": y})
    ours = masstest.dump_grads(exe, work, state_of(model), work.file("gdata"), len(x))
    exact = torch_gradients(model, x, y, torch.float64)
    theirs = torch_gradients(model, x, y, torch.float32)
    test.assertEqual(sorted("grad." + k for k in exact), sorted(k for k in ours if k.startswith("grad.")))
    ours = {k: ours["grad." + k] for k in exact}
    mass_err, mass_at = gradient_error(ours, exact)
    torch_err, torch_at = gradient_error(theirs, exact)
    print(f"gradient error against float64: Mass {mass_err:.2e} ({mass_at}), "
          f"PyTorch float32 {torch_err:.2e} ({torch_at})")
    test.assertLessEqual(mass_err, 1.5 * torch_err)
    test.assertLessEqual(mass_err, 1e-3)


def assert_logits_close(test, ours, theirs):
    scale = max(1.0, float(np.abs(theirs).max()))
    err = float(np.abs(ours - theirs).max()) / scale
    test.assertLess(err, TOL, f"logits differ by {err:.2e} (scaled)")


class ResNet18(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = masstest.Workdir()
        with open(os.path.join(SPEC, "03_resnet18.mass")) as f:
            cls.exe = masstest.compile_model(f.read(), cls.work, "resnet18")
        rng = np.random.default_rng(3)
        cls.x = rng.standard_normal((6, 3, 32, 32)).astype(np.float32)
        cls.y = rng.integers(0, 10, 6).astype(np.int32)
        masstest.write_npy_dir(cls.work.file("data"), {"image": cls.x, "class": cls.y})

    def predictions(self, weights):
        out = self.work.file("preds.safetensors")
        masstest.run([self.exe, "--init", weights, "--val", self.work.file("data"),
                      "--batch", "4", "--dump-predictions", out])
        return masstest.read_safetensors(out)["pred.0"]

    def test_names_and_shapes_equal_torchvision(self):
        import torchvision
        expected = state_of(torchvision.models.resnet18(num_classes=10))
        params = masstest.param_shapes(self.exe)
        buffers = masstest.param_shapes(self.exe, buffers=True)
        ours = {**params, **buffers}
        self.assertEqual(sorted(ours), sorted(expected))
        for name, value in expected.items():
            self.assertEqual(list(value.shape), ours[name], name)
        self.assertEqual(sorted(buffers), sorted(k for k in expected if "running" in k))

    def test_torchvision_weights_load(self):
        model = torchvision_resnet18()
        weights = self.work.file("torchvision.safetensors")
        masstest.write_safetensors(weights, state_of(model))
        with torch.no_grad():
            theirs = model(torch.tensor(self.x)).numpy()
        assert_logits_close(self, self.predictions(weights), theirs)

    def test_gradients_match_torchvision(self):
        """Spec 03's gradients at batch 4 against torchvision's ResNet-18 in
        float64, as close as PyTorch's own float32 gradients are."""
        rng = np.random.default_rng(12)
        x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
        y = rng.integers(0, 10, 4).astype(np.int32)
        assert_gradient_parity(self, self.exe, self.work, torchvision_resnet18(), x, y)

    def test_checkpoint_loads_into_torchvision(self):
        import torchvision
        start = self.work.file("start.safetensors")
        masstest.write_safetensors(start, state_of(torchvision_resnet18()))
        # Two training steps (with the spec's augmentation), then the last
        # checkpoint goes into torchvision unchanged.
        ckpt = self.work.file("ckpt")
        masstest.run([self.exe, "--init", start, "--train", self.work.file("data"),
                      "--val", self.work.file("data"), "--batch", "3", "--epochs", "1",
                      "--lr", "0.01", "--checkpoint-dir", ckpt])
        trained = masstest.read_safetensors(os.path.join(ckpt, "last.safetensors"))
        model = torchvision.models.resnet18(num_classes=10)
        missing, unexpected = model.load_state_dict(
            {k: torch.tensor(v) for k, v in trained.items()}, strict=False)
        self.assertEqual(unexpected, [])
        self.assertTrue(all(k.endswith("num_batches_tracked") for k in missing), missing)
        before = masstest.read_safetensors(start)
        self.assertGreater(np.abs(trained["bn1.running_mean"] - before["bn1.running_mean"]).max(), 0)
        self.assertGreater(np.abs(trained["fc.weight"] - before["fc.weight"]).max(), 0)
        with torch.no_grad():
            theirs = model.eval()(torch.tensor(self.x)).numpy()
        assert_logits_close(self, self.predictions(os.path.join(ckpt, "last.safetensors")), theirs)


class InceptionTwin(torch.nn.Module):
    """Spec 04 in PyTorch, with its parameter names."""

    class Branches(torch.nn.Module):
        def __init__(self, c_in, c1, c3r, c3, c5r, c5, pool_proj):
            super().__init__()
            conv = torch.nn.Conv2d
            self.b1x1 = conv(c_in, c1, 1)
            self.b3x3 = torch.nn.ModuleList([conv(c_in, c3r, 1), conv(c3r, c3, 3, padding=1)])
            self.b5x5 = torch.nn.ModuleList([conv(c_in, c5r, 1), conv(c5r, c5, 5, padding=2)])
            self.bpool = conv(c_in, pool_proj, 1)

        def forward(self, x):
            b3 = F.relu(self.b3x3[1](F.relu(self.b3x3[0](x))))
            b5 = F.relu(self.b5x5[1](F.relu(self.b5x5[0](x))))
            bp = F.relu(self.bpool(F.max_pool2d(x, 3, stride=1, padding=1)))
            return torch.cat([F.relu(self.b1x1(x)), b3, b5, bp], 1)

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.ModuleList([torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.BatchNorm2d(32)])
        self.mixed1 = self.Branches(32, 16, 16, 32, 8, 8, 8)
        self.mixed2 = self.Branches(64, 32, 32, 48, 8, 16, 16)
        self.logits = torch.nn.Linear(112, 10)

    def forward(self, x):
        h = F.relu(self.stem[1](self.stem[0](x)))
        h = self.mixed2(F.max_pool2d(self.mixed1(h), 2))
        return self.logits(h.mean((2, 3)))


class Inception(unittest.TestCase):
    def test_gradients_match_pytorch(self):
        """Spec 04's parameters are its PyTorch twin's, and its gradients at
        batch 4 are as close to the twin's in float64 as PyTorch's own
        float32 gradients are."""
        work = masstest.Workdir()
        with open(os.path.join(SPEC, "04_inception.mass")) as f:
            exe = masstest.compile_model(f.read(), work, "inception")
        torch.manual_seed(1)
        model = InceptionTwin()
        with torch.no_grad():
            model.stem[1].weight.uniform_(0.5, 1.5)
            model.stem[1].bias.uniform_(-0.2, 0.2)
        ours = {**masstest.param_shapes(exe), **masstest.param_shapes(exe, buffers=True)}
        theirs = {k: list(v.shape) for k, v in state_of(model).items()}
        self.assertEqual(ours, theirs)
        rng = np.random.default_rng(13)
        x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
        y = rng.integers(0, 10, 4).astype(np.int32)
        assert_gradient_parity(self, exe, work, model, x, y)


class BatchNormModes(unittest.TestCase):
    def test_running_statistics_and_evaluation(self):
        """One training step on one batch moves the running statistics as
        PyTorch does (unbiased variance, momentum 0.3); evaluation then uses
        them, and dropout is off."""
        source = """
model bn {
  input x: f32[B, 2, 5, 5]
  label y: i32[B]
  conv = conv2d(x, 3, kernel: 3, pad: 1)
  norm = batchnorm(conv, momentum: 0.3, eps: 1e-4)
  h = dropout(relu(norm), 0.5)
  out = dense(flatten(global_avgpool(h)), 4)
  task cls { loss = cross_entropy(out, y) }
}
"""
        work = masstest.Workdir()
        exe = masstest.compile_model(source, work, "bn")
        rng = np.random.default_rng(11)
        n = 8
        x = (rng.standard_normal((n, 2, 5, 5)) * 2 + 0.5).astype(np.float32)
        y = rng.integers(0, 4, n).astype(np.int32)
        masstest.write_npy_dir(work.file("data"), {"x": x, "y": y})
        params = {k: (rng.standard_normal(s) * 0.5).astype(np.float32)
                  for k, s in masstest.param_shapes(exe).items()}
        stats = {"norm.running_mean": rng.standard_normal(3).astype(np.float32),
                 "norm.running_var": rng.uniform(0.5, 2, 3).astype(np.float32)}
        init = work.file("init.safetensors")
        masstest.write_safetensors(init, {**params, **stats})
        ckpt = work.file("ckpt")
        masstest.run([exe, "--init", init, "--train", work.file("data"), "--batch", str(n),
                      "--epochs", "1", "--checkpoint-dir", ckpt])
        trained = masstest.read_safetensors(os.path.join(ckpt, "last.safetensors"))

        mean = torch.tensor(stats["norm.running_mean"])
        var = torch.tensor(stats["norm.running_var"])
        conv = F.conv2d(torch.tensor(x), torch.tensor(params["conv.weight"]),
                        torch.tensor(params["conv.bias"]), padding=1)
        F.batch_norm(conv, mean, var, training=True, momentum=0.3, eps=1e-4)
        self.assertLess(masstest.rel_error(trained["norm.running_mean"], mean.numpy()), 1e-5)
        self.assertLess(masstest.rel_error(trained["norm.running_var"], var.numpy()), 1e-5)

        out = work.file("preds.safetensors")
        masstest.run([exe, "--init", os.path.join(ckpt, "last.safetensors"), "--val",
                      work.file("data"), "--dump-predictions", out])
        p = {k: torch.tensor(v) for k, v in trained.items()}
        h = F.conv2d(torch.tensor(x), p["conv.weight"], p["conv.bias"], padding=1)
        h = F.batch_norm(h, p["norm.running_mean"], p["norm.running_var"], p["norm.weight"],
                         p["norm.bias"], training=False, eps=1e-4)
        theirs = F.linear(F.relu(h).mean((2, 3)), p["out.weight"], p["out.bias"])
        assert_logits_close(self, masstest.read_safetensors(out)["pred.0"], theirs.numpy())


if __name__ == "__main__":
    unittest.main(verbosity=2)
