"""Vision models against PyTorch: spec 03 (ResNet-18) has torchvision's
parameter and buffer names and shapes, and weights move both ways with
evaluation-mode logits within 1e-4; batch norm's running statistics follow
PyTorch's update rule and serve evaluation."""
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
