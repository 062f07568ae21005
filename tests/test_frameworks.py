"""PyTorch and JAX: DLPack arrays through the plain API, fastloss.torch's custom operators
(gradcheck in float64 for every loss and differentiable input, torch.compile), fastloss.jax
under jit and grad (the FFI path and the callback path), bfloat16, and `import fastloss`
without either framework."""
import subprocess
import sys

import numpy as np
import pytest

import fastloss

torch = pytest.importorskip("torch", reason="torch is not installed")


# --------------------------------------------------------------------------- inputs per loss
def _cases(lib_tensor, rng):
    """(name, positional arrays, keywords, indices of the differentiable positional arrays) in
    float64, small and away from the losses' kinks."""
    T = lib_tensor
    f = lambda *s: T(rng.standard_normal(s))  # noqa: E731
    u = lambda *s: T(rng.uniform(0.05, 0.95, s))  # noqa: E731
    lab = lambda n, c: T(rng.integers(0, c, n))  # noqa: E731
    lp = np.log(rng.dirichlet(np.ones(5), (4, 2)))  # (T=4, N=2, C=5)
    signs = T(rng.choice([-1.0, 1.0], (3, 4)))
    return [
        ("softmax_cross_entropy", (f(3, 5), lab(3, 5)), dict(label_smoothing=0.1, z_loss=0.01), [0]),
        ("softmax_cross_entropy", (f(2, 5, 3), lab((2, 3), 5)), dict(axis=1, weight=u(5)), [0]),
        ("nll_loss", (f(3, 5), lab(3, 5)), dict(weight=u(5)), [0]),
        ("ctc_loss", (f(4, 2, 5), T(np.array([[1, 2], [3, 0]])), T(np.array([4, 3])), T(np.array([2, 1]))),
         dict(from_logits=True), [0]),
        ("ctc_loss", (T(lp), T(np.array([[1, 2], [3, 0]])), T(np.array([4, 3])), T(np.array([2, 1]))), {}, [0]),
        ("sigmoid_cross_entropy", (f(3, 4), u(3, 4)), dict(pos_weight=u(4)), [0]),
        ("balanced_sigmoid_cross_entropy", (f(3, 4), T(rng.integers(0, 2, (3, 4)).astype(float))), {}, [0]),
        ("sigmoid_focal_loss", (f(3, 4), u(3, 4)), {}, [0]),
        ("truncated_sigmoid_cross_entropy", (f(3, 4), T(rng.integers(0, 2, (3, 4)).astype(float))),
         dict(softness=0.2), [0]),
        ("hinge_loss", (f(3, 4) * 3, signs), dict(squared=True), [0]),
        ("kl_div", (T(np.log(rng.uniform(0.1, 1, (3, 4)))), u(3, 4)), {}, [0]),
        ("mse_loss", (f(3, 4), f(3, 4)), dict(weight=u(3, 4)), [0, 1]),
        ("l1_loss", (f(3, 4), f(3, 4)), {}, [0, 1]),
        ("huber_loss", (f(3, 4), f(3, 4)), dict(delta=0.7), [0, 1]),
        ("smooth_l1_loss", (f(3, 4), f(3, 4)), dict(beta=0.5), [0, 1]),
        ("log_cosh_loss", (f(3, 4), f(3, 4)), {}, [0, 1]),
        ("softmax_focal_loss", (f(3, 5), lab(3, 5)), dict(alpha=u(5), gamma=2.0), [0]),
        ("truncated_cross_entropy", (f(3, 5), lab(3, 5)), dict(softness=0.2), [0]),
        ("multiclass_hinge_loss", (f(3, 5) * 2, lab(3, 5)), dict(kind="crammer_singer"), [0]),
        ("l2_loss", (f(3, 4), f(3, 4)), {}, [0, 1]),
        ("dice_loss", (f(2, 3, 4), T(rng.integers(0, 3, (2, 4)))), dict(activation="softmax", axis=1), [0]),
        ("dice_loss", (f(2, 6), u(2, 6)), dict(activation="sigmoid"), [0]),
        ("bi_tempered_logistic_loss", (f(3, 5), lab(3, 5)), dict(t1=0.8, t2=1.0), [0]),
        ("bi_tempered_binary_logistic_loss", (f(3, 4), u(3, 4)), dict(t1=0.8, t2=1.0), [0]),
        ("large_margin_softmax_loss", (f(4, 3), f(3, 5), lab(4, 5)), dict(margin=2), [0, 1]),
        ("center_loss", (f(4, 3), lab(4, 2), f(2, 3)), {}, [0]),
    ]


def _case_ids():
    return [f"{c[0]}-{i}" for i, c in enumerate(_cases(lambda a: a, np.random.default_rng(0)))]


# --------------------------------------------------------------------------- DLPack, plain API
class TestTorchTensorsInPlainApi:
    def test_torch_in_torch_out(self):
        rng = np.random.default_rng(0)
        x = rng.standard_normal((6, 7)).astype(np.float32)
        y = rng.integers(0, 7, 6)
        loss, grad = fastloss.softmax_cross_entropy(torch.from_numpy(x), torch.from_numpy(y), return_grad=True)
        ref_loss, ref_grad = fastloss.softmax_cross_entropy(x, y, return_grad=True)
        assert isinstance(loss, torch.Tensor) and isinstance(grad, torch.Tensor)
        assert loss.dtype == torch.float32 and loss.shape == () and grad.shape == (6, 7)
        np.testing.assert_array_equal(loss.numpy(), ref_loss)
        np.testing.assert_array_equal(grad.numpy(), ref_grad)

    def test_strided_tensor_read_in_place(self):
        rng = np.random.default_rng(1)
        x = torch.from_numpy(rng.standard_normal((7, 6)))
        y = torch.from_numpy(rng.integers(0, 7, 6))
        got = fastloss.softmax_cross_entropy(x.T, y, reduction="none")
        ref = fastloss.softmax_cross_entropy(np.ascontiguousarray(x.numpy().T), y.numpy(), reduction="none")
        np.testing.assert_array_equal(got.numpy(), ref)

    def test_grad_out_tensor_written_in_place(self):
        x = torch.randn(4, 5, dtype=torch.float64)
        g = torch.empty_like(x)
        loss, grad = fastloss.softmax_cross_entropy(x, torch.tensor([0, 1, 2, 3]), grad_out=g)
        assert grad is g
        ref = fastloss.softmax_cross_entropy(x.numpy(), np.arange(4), return_grad=True)[1]
        np.testing.assert_array_equal(g.numpy(), ref)

    def test_requires_grad_is_a_type_error_naming_the_fix(self):
        x = torch.randn(3, 4, requires_grad=True)
        with pytest.raises(TypeError, match=r"logits requires grad.*fastloss\.torch.*logits\.detach\(\)"):
            fastloss.softmax_cross_entropy(x, torch.tensor([0, 1, 2]))

    def test_mixing_torch_and_numpy_is_a_type_error(self):
        with pytest.raises(TypeError, match=r"cannot mix torch arrays \(logits\) with NumPy arrays \(labels\)"):
            fastloss.softmax_cross_entropy(torch.randn(3, 4), np.array([0, 1, 2]))

    def test_mixing_torch_and_jax_names_both(self):
        jnp_ = pytest.importorskip("jax.numpy")
        with pytest.raises(TypeError, match=r"cannot mix torch arrays \(pred\) with jax arrays \(target\)"):
            fastloss.mse_loss(torch.zeros(3), jnp_.zeros(3))

    @pytest.mark.parametrize("device_type, message", [(2, "is a CUDA fakelib array"),
                                                       (4, "DLPack device type 4 are not supported")])
    def test_other_devices_are_named(self, monkeypatch, device_type, message):
        import types

        lib = types.ModuleType("fakelib")
        lib.from_dlpack = lambda x: x
        monkeypatch.setitem(sys.modules, "fakelib", lib)

        class Array:
            __module__ = "fakelib"
            dtype = "float32"

            def __dlpack__(self, **kw):
                raise AssertionError("must not be read")

            def __dlpack_device__(self):
                return (device_type, 0)

        if device_type == 2 and fastloss._C.cuda_compiled():
            pytest.skip("a CUDA build reads CUDA arrays")
        with pytest.raises(TypeError, match=message):
            fastloss.mse_loss(Array(), Array())

    def test_lists_go_with_tensors(self):
        loss = fastloss.softmax_cross_entropy(torch.zeros(2, 4, dtype=torch.float64), [0, 3])
        assert isinstance(loss, torch.Tensor)
        assert loss.item() == pytest.approx(np.log(4))

    def test_bfloat16_computed_in_float32(self):
        x = torch.randn(5, 8).bfloat16()
        y = torch.randint(0, 8, (5,))
        loss, grad = fastloss.softmax_cross_entropy(x, y, return_grad=True)
        assert loss.dtype == torch.bfloat16 and grad.dtype == torch.bfloat16
        ref_loss, ref_grad = fastloss.softmax_cross_entropy(x.float().numpy(), y.numpy(), return_grad=True)
        np.testing.assert_array_equal(loss.float().numpy(), torch.tensor(ref_loss).bfloat16().float().numpy())
        np.testing.assert_array_equal(grad.float().numpy(), torch.from_numpy(ref_grad).bfloat16().float().numpy())

    def test_cuda_tensors_stay_on_the_gpu(self):
        if not (torch.cuda.is_available() and fastloss.cuda_available()):
            pytest.skip("needs a CUDA GPU, torch with CUDA and a CUDA build of fastloss")
        pytest.importorskip("cupy", reason="CUDA tensors are read through CuPy")
        import fastloss.torch as flt_

        x = torch.randn(8, 10, device="cuda", dtype=torch.float64)
        y = torch.randint(0, 10, (8,), device="cuda")
        loss, grad = fastloss.softmax_cross_entropy(x, y, return_grad=True)
        assert loss.device == x.device and grad.device == x.device
        ref = fastloss.softmax_cross_entropy(x.cpu().numpy(), y.cpu().numpy(), return_grad=True)
        np.testing.assert_allclose(grad.cpu().numpy(), ref[1], rtol=1e-10, atol=1e-12)
        xr = x.clone().requires_grad_()
        flt_.softmax_cross_entropy(xr, y).backward()
        np.testing.assert_allclose(xr.grad.cpu().numpy(), ref[1], rtol=1e-10, atol=1e-12)

    def test_other_results_come_back_as_tensors(self):
        rng = np.random.default_rng(2)
        f, w, y = (torch.from_numpy(a) for a in (rng.standard_normal((4, 3)), rng.standard_normal((3, 5)),
                                                  rng.integers(0, 5, 4)))
        loss, (gf, gw) = fastloss.large_margin_softmax_loss(f, w, y, return_grad=True)
        assert all(isinstance(t, torch.Tensor) for t in (loss, gf, gw))
        ref = fastloss.large_margin_softmax_loss(f.numpy(), w.numpy(), y.numpy(), return_grad=True)
        np.testing.assert_allclose(gw.numpy(), ref[1][1], rtol=1e-12)
        p = torch.softmax(torch.randn(3, 4, dtype=torch.float64), 1)
        assert isinstance(fastloss.entropy(p), torch.Tensor)
        assert isinstance(fastloss.tempered_softmax(torch.randn(3, 4), 1.5), torch.Tensor)
        assert isinstance(fastloss.update_centers(torch.randn(2, 3), torch.randn(4, 3), torch.tensor([0, 1, 1, 0])),
                          torch.Tensor)


# --------------------------------------------------------------------------- fastloss.torch
flt = pytest.importorskip("fastloss.torch")


class TestTorchOps:
    @pytest.mark.parametrize("index", range(len(_case_ids())), ids=_case_ids())
    @pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
    def test_gradcheck_float64(self, index, reduction):
        name, args, kw, diff = _cases(torch.from_numpy, np.random.default_rng(10 + index))[index]
        if reduction == "none" and name == "large_margin_softmax_loss":
            pytest.skip("reduction='none' of large_margin_softmax_loss: per-row weights of grad_weight are not "
                        "separable (tested below)")
        if reduction == "none" and name == "dice_loss" and kw.get("axis") is not None:
            pytest.skip("softmax dice with axis: per-class losses share the softmax (tested below)")
        args = [a.clone().requires_grad_(i in diff) for i, a in enumerate(args)]
        kw = dict(kw, reduction=reduction)
        fn = getattr(flt, name)

        def f(*xs):
            full = list(args)
            for i, x in zip(diff, xs):
                full[i] = x
            return fn(*full, **kw)

        assert torch.autograd.gradcheck(f, tuple(args[i] for i in diff), eps=1e-6, atol=1e-5, rtol=1e-4)
        # The forward value is the NumPy function's.
        ref = getattr(fastloss, name)(*(a.detach().numpy() for a in args),
                                      **{k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()})
        np.testing.assert_allclose(f(*(args[i] for i in diff)).detach().numpy(), ref, rtol=1e-12, atol=1e-12)

    def test_none_with_shared_inputs_takes_a_uniform_gradient_only(self):
        f = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
        w = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
        y = torch.tensor([0, 1, 4, 2])
        flt.large_margin_softmax_loss(f, w, y, reduction="none").sum().backward()
        ref_f, ref_w = fastloss.large_margin_softmax_loss(f.detach().numpy(), w.detach().numpy(), y.numpy(),
                                                          reduction="sum", return_grad=True)[1]
        np.testing.assert_allclose(f.grad.numpy(), ref_f, rtol=1e-12)
        np.testing.assert_allclose(w.grad.numpy(), ref_w, rtol=1e-12)
        loss = flt.large_margin_softmax_loss(f, w, y, reduction="none")
        with pytest.raises(RuntimeError, match="only a gradient equal for every loss element"):
            (loss * torch.arange(4.0, dtype=torch.float64)).sum().backward()

    def test_labels_and_constants_get_no_gradient(self):
        x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
        t = torch.rand(3, 4, dtype=torch.float64, requires_grad=True)
        flt.sigmoid_cross_entropy(x, t).backward()
        assert x.grad is not None and t.grad is None

    def test_second_derivative_raises(self):
        x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
        loss = flt.softmax_cross_entropy(x, torch.tensor([0, 1, 2]))
        with pytest.raises(RuntimeError, match="second derivatives are not supported"):
            torch.autograd.grad(loss, x, create_graph=True)

    def test_no_grad_forward_skips_the_gradient(self):
        x = torch.randn(3, 4)
        with torch.no_grad():
            loss = flt.softmax_cross_entropy(x.requires_grad_(), torch.tensor([0, 1, 2]))
        assert loss.grad_fn is None
        np.testing.assert_array_equal(loss.numpy(), fastloss.softmax_cross_entropy(x.detach().numpy(), [0, 1, 2]))

    def test_keywords_checked(self):
        with pytest.raises(TypeError, match="return_grad"):
            flt.mse_loss(torch.zeros(2), torch.zeros(2), return_grad=True)
        with pytest.raises(TypeError, match="missing required argument 't1'"):
            flt.bi_tempered_logistic_loss(torch.zeros(2, 3), torch.tensor([0, 1]), t2=1.0)

    def test_bfloat16(self):
        x = torch.randn(4, 6).bfloat16().requires_grad_()
        y = torch.randint(0, 6, (4,))
        loss = flt.softmax_cross_entropy(x, y)
        loss.backward()
        assert loss.dtype == torch.bfloat16 and x.grad.dtype == torch.bfloat16
        ref = torch.nn.functional.cross_entropy(x.detach().float().requires_grad_(), y)
        np.testing.assert_allclose(loss.float().item(), ref.item(), rtol=1e-2)

    def test_matches_torch_training_step(self):
        torch.manual_seed(0)
        model = torch.nn.Linear(8, 5).double()
        x, y = torch.randn(16, 8, dtype=torch.float64), torch.randint(0, 5, (16,))
        flt.softmax_cross_entropy(model(x), y, label_smoothing=0.1).backward()
        ours = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y, label_smoothing=0.1).backward()
        for a, p in zip(ours, model.parameters()):
            torch.testing.assert_close(a, p.grad, rtol=1e-12, atol=1e-14)

    def test_opcheck(self):
        x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
        y = torch.tensor([0, 4, 2])
        torch.library.opcheck(torch.ops.fastloss.softmax_cross_entropy.default,
                              (x, y, None, -100, 0.0, 0.0, -1, "mean", True))
        torch.library.opcheck(torch.ops.fastloss.mse_loss.default,
                              (x, torch.randn(3, 5, dtype=torch.float64), None, "none", True))

    @pytest.mark.parametrize("name", ["softmax_cross_entropy", "mse_loss", "large_margin_softmax_loss"])
    def test_torch_compile_fullgraph(self, name):
        torch._dynamo.reset()
        torch.manual_seed(0)
        if name == "large_margin_softmax_loss":
            args = (torch.randn(6, 4, requires_grad=True), torch.randn(4, 5, requires_grad=True),
                    torch.randint(0, 5, (6,)))
        elif name == "mse_loss":
            args = (torch.randn(6, 4, requires_grad=True), torch.randn(6, 4))
        else:
            args = (torch.randn(6, 5, requires_grad=True), torch.randint(0, 5, (6,)))
        fn = getattr(flt, name)

        def step(*a):
            return fn(*a) * 2.0

        compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
        loss = compiled(*args)
        grads = torch.autograd.grad(loss, [a for a in args if a.requires_grad])
        eager = step(*args)
        eager_grads = torch.autograd.grad(eager, [a for a in args if a.requires_grad])
        torch.testing.assert_close(loss, eager)
        for a, b in zip(grads, eager_grads):
            torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------- fastloss.jax
jax = pytest.importorskip("jax", reason="jax is not installed")
jnp = jax.numpy
flj = pytest.importorskip("fastloss.jax")


def _x64(on=True):
    """float64 in JAX for a block (jax.enable_x64 in new releases, jax.experimental before)."""
    ctx = jax.enable_x64 if hasattr(jax, "enable_x64") else jax.experimental.enable_x64
    return ctx(bool(on))


class TestJax:
    def test_jax_in_jax_out(self):
        x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 6)), jnp.float32)
        loss, grad = fastloss.softmax_cross_entropy(x, jnp.array([0, 1, 2, 5]), return_grad=True)
        assert isinstance(loss, jax.Array) and isinstance(grad, jax.Array)
        ref = fastloss.softmax_cross_entropy(np.asarray(x), np.array([0, 1, 2, 5]), return_grad=True)
        np.testing.assert_array_equal(np.asarray(grad), ref[1])

    def test_numpy_bfloat16_from_ml_dtypes(self):
        x = np.asarray(np.random.default_rng(4).standard_normal((3, 5)), dtype=jnp.bfloat16)
        loss, grad = fastloss.softmax_cross_entropy(x, np.array([0, 4, 2]), return_grad=True)
        assert loss.dtype == x.dtype and grad.dtype == x.dtype and isinstance(grad, np.ndarray)
        ref = fastloss.softmax_cross_entropy(x.astype(np.float32), np.array([0, 4, 2]), return_grad=True)[1]
        np.testing.assert_array_equal(grad.astype(np.float32), ref.astype(x.dtype).astype(np.float32))
        with pytest.raises(TypeError, match="labels must be an integer array"):
            fastloss.nll_loss(x, x)

    def test_mixing_jax_and_torch_is_a_type_error(self):
        with pytest.raises(TypeError, match="cannot mix"):
            fastloss.mse_loss(jnp.zeros(3), torch.zeros(3))

    def test_jax_bfloat16_plain_api(self):
        x = jnp.asarray(np.random.default_rng(1).standard_normal((3, 4)), jnp.bfloat16)
        loss = fastloss.softmax_cross_entropy(x, jnp.array([0, 1, 3]))
        assert loss.dtype == jnp.bfloat16

    def test_ffi_path_has_no_callback(self):
        if not flj.ffi_available():
            pytest.skip("fastloss was built without jaxlib's FFI headers")
        x = jnp.zeros((4, 8))
        y = jnp.array([0, 1, 2, 3])
        text = str(jax.make_jaxpr(jax.value_and_grad(flj.softmax_cross_entropy))(x, y))
        assert "ffi_call" in text and "callback" not in text
        text = str(jax.make_jaxpr(jax.value_and_grad(flj.nll_loss))(x, y))
        assert "ffi_call" in text and "callback" not in text
        text = str(jax.make_jaxpr(jax.value_and_grad(flj.huber_loss))(x, x + 1))
        assert "ffi_call" in text and "callback" not in text
        text = str(jax.make_jaxpr(jax.value_and_grad(flj.mse_loss))(x, x, weight=x))  # weights: the callback
        assert "callback" in text

    @pytest.mark.parametrize("name", ["sigmoid_cross_entropy", "balanced_sigmoid_cross_entropy", "sigmoid_focal_loss",
                                      "truncated_sigmoid_cross_entropy", "hinge_loss", "kl_div", "mse_loss",
                                      "l1_loss", "huber_loss", "smooth_l1_loss", "log_cosh_loss"])
    @pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
    def test_elementwise_ffi_options(self, name, reduction):
        rng = np.random.default_rng(7)
        x = rng.standard_normal((4, 6)).astype(np.float32)
        t = {"hinge_loss": rng.choice([-1.0, 1.0], (4, 6)),
             "balanced_sigmoid_cross_entropy": rng.integers(0, 2, (4, 6)).astype(float),
             "truncated_sigmoid_cross_entropy": rng.integers(0, 2, (4, 6)).astype(float)}.get(
                 name, rng.uniform(0.05, 0.95, (4, 6))).astype(np.float32)
        kw = {"sigmoid_focal_loss": dict(alpha=0.4, gamma=1.5), "truncated_sigmoid_cross_entropy": dict(softness=0.3),
              "hinge_loss": dict(margin=0.5, squared=True), "kl_div": dict(log_target=True),
              "huber_loss": dict(delta=0.3), "smooth_l1_loss": dict(beta=0.2)}.get(name, {})
        fn = getattr(flj, name)
        w = rng.uniform(0.5, 1.5, (4, 6)).astype(np.float32)

        def f(x):
            loss = fn(x, jnp.asarray(t), reduction=reduction, **kw)
            return (loss * w).sum() if reduction == "none" else loss

        val, g = jax.jit(jax.value_and_grad(f))(jnp.asarray(x))
        ref_loss, ref_grad = getattr(fastloss, name)(x, t, reduction=reduction, return_grad=True, **kw)
        if reduction == "none":
            ref_loss, ref_grad = (ref_loss * w).sum(), ref_grad * w
        np.testing.assert_allclose(float(val), ref_loss, rtol=1e-5)
        np.testing.assert_allclose(np.asarray(g), ref_grad, rtol=1e-5, atol=1e-7)

    @pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
    def test_nll_ffi(self, reduction):
        rng = np.random.default_rng(8)
        lp = np.log(rng.dirichlet(np.ones(6), 5)).astype(np.float32)
        y = np.array([0, 5, -100, 2, 3])
        w = rng.uniform(0.5, 1.5, 5).astype(np.float32)

        def f(x):
            loss = flj.nll_loss(x, jnp.asarray(y), reduction=reduction)
            return (loss * w).sum() if reduction == "none" else loss

        val, g = jax.jit(jax.value_and_grad(f))(jnp.asarray(lp))
        ref_loss, ref_grad = fastloss.nll_loss(lp, y, reduction=reduction, return_grad=True)
        if reduction == "none":
            ref_loss, ref_grad = (ref_loss * w).sum(), ref_grad * w[:, None]
        np.testing.assert_allclose(float(val), ref_loss, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(g), ref_grad, rtol=1e-6)

    @pytest.mark.parametrize("name", ["softmax_cross_entropy", "softmax_focal_loss"])  # FFI, callback
    def test_vmap(self, name):
        rng = np.random.default_rng(9)
        x = jnp.asarray(rng.standard_normal((3, 4, 5)), jnp.float32)
        y = jnp.asarray(rng.integers(0, 5, (3, 4)))
        fn = getattr(flj, name)
        vals, grads = jax.jit(jax.vmap(jax.value_and_grad(fn)))(x, y)
        for i in range(3):
            ref_loss, ref_grad = getattr(fastloss, name)(np.asarray(x[i]), np.asarray(y[i]), return_grad=True)
            np.testing.assert_allclose(float(vals[i]), ref_loss, rtol=1e-6)
            np.testing.assert_allclose(np.asarray(grads[i]), ref_grad, rtol=1e-5, atol=1e-7)

    def test_ffi_error_is_raised(self):
        if not flj.ffi_available():
            pytest.skip("fastloss was built without jaxlib's FFI headers")
        with pytest.raises(Exception, match="label"):
            jax.block_until_ready(jax.jit(flj.softmax_cross_entropy)(jnp.zeros((2, 3)), jnp.array([0, 7])))

    @pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_softmax_cross_entropy_jit_grad(self, reduction, dtype):
        rng = np.random.default_rng(3)
        x = rng.standard_normal((5, 7)).astype(dtype)
        y = rng.integers(0, 7, 5)
        w = rng.uniform(0.5, 1.5, 5).astype(dtype) if reduction == "none" else None
        with _x64(dtype == np.float64):

            def f(x):
                loss = flj.softmax_cross_entropy(x, jnp.asarray(y), label_smoothing=0.1, reduction=reduction)
                return (loss * w).sum() if w is not None else loss

            val, g = jax.jit(jax.value_and_grad(f))(jnp.asarray(x))
        ref_loss, ref_grad = fastloss.softmax_cross_entropy(x, y, label_smoothing=0.1, reduction=reduction,
                                                            return_grad=True)
        if w is not None:
            ref_loss, ref_grad = (ref_loss * w).sum(), ref_grad * w[:, None]
        tol = 1e-6 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(float(val), ref_loss, rtol=tol)
        np.testing.assert_allclose(np.asarray(g), ref_grad, rtol=tol, atol=tol)

    @pytest.mark.parametrize("index", range(len(_case_ids())), ids=_case_ids())
    def test_every_loss_jit_grad_matches_numpy(self, index):
        with _x64():
            name, args, kw, diff = _cases(jnp.asarray, np.random.default_rng(10 + index))[index]
            fn = getattr(flj, name)

            def f(*xs):
                full = list(args)
                for i, x in zip(diff, xs):
                    full[i] = x
                return fn(*full, **kw)

            val, grads = jax.jit(jax.value_and_grad(f, argnums=tuple(range(len(diff)))))(*(args[i] for i in diff))
            np_args = [np.asarray(a) for a in args]
            np_kw = {k: (np.asarray(v) if isinstance(v, jax.Array) else v) for k, v in kw.items()}
            ref_loss, ref_grad = getattr(fastloss, name)(*np_args, **np_kw, return_grad=True)
            ref_grads = ref_grad if isinstance(ref_grad, tuple) else (ref_grad,)
            if len(diff) == 2 and len(ref_grads) == 1:  # pred - target losses: the target's gradient is minus
                t = np_args[1]
                ref_grads = (ref_grads[0], -ref_grads[0].reshape((-1,) + t.shape).sum(0) if t.ndim < np_args[0].ndim
                             else -ref_grads[0])
            np.testing.assert_allclose(float(val), ref_loss, rtol=1e-12)
            for g, r in zip(grads, ref_grads):
                np.testing.assert_allclose(np.asarray(g), r, rtol=1e-10, atol=1e-12)

    def test_check_grads_numerically(self):
        from jax.test_util import check_grads

        with _x64():
            rng = np.random.default_rng(5)
            x = jnp.asarray(rng.standard_normal((3, 5)))
            y = jnp.asarray(rng.integers(0, 5, 3))
            check_grads(lambda x: flj.softmax_cross_entropy(x, y, reduction="none"), (x,), order=1, modes=["rev"])
            t = jnp.asarray(rng.standard_normal((3, 5)))
            check_grads(lambda x, t: flj.huber_loss(x, t, reduction="none"), (x, t), order=1, modes=["rev"])

    def test_bfloat16(self):
        x = jnp.asarray(np.random.default_rng(6).standard_normal((4, 6)), jnp.bfloat16)
        y = jnp.array([0, 1, 2, 3])
        loss, g = jax.jit(jax.value_and_grad(flj.softmax_cross_entropy))(x, y)
        assert loss.dtype == jnp.bfloat16 and g.dtype == jnp.bfloat16
        ref = fastloss.softmax_cross_entropy(np.asarray(x, np.float32), np.asarray(y))
        np.testing.assert_allclose(float(loss), ref, rtol=1e-2)
        loss2 = jax.jit(flj.mse_loss)(x, jnp.zeros_like(x))
        assert loss2.dtype == jnp.bfloat16


# --------------------------------------------------------------------------- optional
def test_import_without_torch_or_jax():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['jax'] = None; sys.modules['jaxlib'] = None\n"
            "import numpy as np, fastloss\n"
            "print(float(fastloss.mse_loss(np.ones(3), np.zeros(3))))\n"
            "try:\n    import fastloss.torch\nexcept ImportError:\n    print('no torch')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1.0", "no", "torch"]


@pytest.mark.parametrize("module", ["fastloss.torch", "fastloss.jax"])
def test_module_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0
