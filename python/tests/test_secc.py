"""Tests of the secc Python package: compile, metadata, run against ONNX Runtime, inputs
that need converting, concurrent runs, and an exception (never a crash) for every error."""
import os
import threading
from pathlib import Path

import numpy as np
import pytest

import secc

MODELS = Path(__file__).resolve().parents[2] / "tests" / "models"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("secc") / "se_residual.bin"
    r = secc.compile(MODELS / "se_residual.onnx", out)
    assert r["se_blocks"] == 1 and r["bytes"] == out.stat().st_size
    return out


def rand(shape, seed):
    return np.random.default_rng(seed).uniform(-2, 2, size=shape).astype(np.float32)


def input_shape(model, batch):
    return tuple(batch if isinstance(d, str) else d for d in model.inputs[0].shape)


def test_metadata(artifact):
    m = secc.Model(artifact)
    assert len(m.inputs) == 1 and len(m.outputs) == 1
    x = m.inputs[0]
    assert isinstance(x, secc.TensorInfo) and x.dtype == "float32"
    name, shape, _ = x  # unpacks as (name, shape, dtype)
    assert isinstance(shape[0], str), "the batch is symbolic"
    assert all(isinstance(d, int) for d in shape[1:])
    assert name in repr(m)
    assert secc.__version__


@pytest.mark.parametrize("batch", [1, 3])
def test_matches_onnx_runtime(artifact, batch):
    ort = pytest.importorskip("onnxruntime")
    m = secc.Model(artifact, threads=2)
    x = rand(input_shape(m, batch), batch)
    sess = ort.InferenceSession(str(MODELS / "se_residual.onnx"), providers=["CPUExecutionProvider"])
    (want,) = sess.run(None, {m.inputs[0].name: x})
    got = m.run({m.inputs[0].name: x})
    assert list(got) == [o.name for o in m.outputs]
    y = got[m.outputs[0].name]
    assert y.dtype == np.float32 and y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


def test_inputs_are_converted_when_needed(artifact):
    m = secc.Model(artifact, threads=1)
    name = m.inputs[0].name
    x = rand(input_shape(m, 2), 7)
    want = m.run({name: x})[m.outputs[0].name]
    # float64, and a non-contiguous view, give the same answer
    assert np.array_equal(m.run({name: x.astype(np.float64)})[m.outputs[0].name], want)
    wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), np.float32)
    wide[..., ::2] = x
    assert not wide[..., ::2].flags.c_contiguous
    assert np.array_equal(m.run({name: wide[..., ::2]})[m.outputs[0].name], want)
    # outputs are independent arrays: a later run does not change an earlier result
    keep = want.copy()
    m.run({name: rand(x.shape, 8)})
    assert np.array_equal(want, keep)


def test_run_into_caller_arrays(artifact):
    m = secc.Model(artifact, threads=2)
    name, out = m.inputs[0].name, m.outputs[0].name
    x = rand(input_shape(m, 3), 11)
    want = m.run({name: x})[out]
    bufs = m.output_arrays(batch=3)
    bufs[out].fill(np.nan)
    got = m.run({name: x}, out=bufs)
    assert got is bufs and np.array_equal(bufs[out], want)
    with pytest.raises(secc.InvalidInputError, match="shape"):
        m.run({name: x}, out=m.output_arrays(batch=2))
    with pytest.raises(secc.InvalidInputError, match="no array for output"):
        m.run({name: x}, out={})
    with pytest.raises(secc.InvalidInputError, match="float32"):
        m.run({name: x}, out={out: np.empty(want.shape, np.float64)})
    frozen = np.empty(want.shape, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(secc.InvalidInputError, match="writeable"):
        m.run({name: x}, out={out: frozen})
    strided = np.empty(want.shape[:-1] + (2 * want.shape[-1],), np.float32)[..., ::2]
    with pytest.raises(secc.InvalidInputError, match="contiguous"):
        m.run({name: x}, out={out: strided})


def test_concurrent_threads_match_serial_runs(artifact):
    m = secc.Model(artifact, threads=1)
    name, out = m.inputs[0].name, m.outputs[0].name
    xs = [rand(input_shape(m, 1 + i % 3), 100 + i) for i in range(6)]
    want = [m.run({name: x})[out] for x in xs]
    errors = []

    def work(t):
        try:
            for r in range(20):
                k = (t + r) % len(xs)
                if not np.array_equal(m.run({name: xs[k]})[out], want[k]):
                    errors.append(f"thread {t} run {r} differs")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def test_bench_reports_latencies(artifact):
    m = secc.Model(artifact, threads=1)
    b = m.bench({m.inputs[0].name: rand(input_shape(m, 1), 1)}, iters=5, warmup=1)
    assert 0 < b["min_us"] <= b["median_us"] <= b["p90_us"]


def test_run_errors_are_exceptions(artifact):
    m = secc.Model(artifact, threads=1)
    name = m.inputs[0].name
    shape = input_shape(m, 1)
    with pytest.raises(secc.InvalidInputError, match="is missing"):
        m.run({})
    with pytest.raises(secc.InvalidInputError, match="no input named"):
        m.run({name: rand(shape, 1), "bogus": rand(shape, 1)})
    bad = (shape[0], shape[1] + 1) + shape[2:]
    with pytest.raises(secc.InvalidInputError, match="expected shape"):
        m.run({name: rand(bad, 1)})
    with pytest.raises(secc.InvalidInputError):
        m.run({name: rand(shape[1:], 1)})
    with pytest.raises(TypeError):
        m.run([rand(shape, 1)])
    with pytest.raises(ValueError):
        m.run({name: "not an array"})
    assert issubclass(secc.InvalidInputError, secc.SeccError)


def test_load_errors_are_exceptions(tmp_path):
    with pytest.raises(secc.LoadError, match="cannot read artifact"):
        secc.Model(tmp_path / "missing.bin")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not an artifact at all")
    with pytest.raises(secc.LoadError, match="not a secc artifact"):
        secc.Model(junk)


def test_compile_errors_are_exceptions_and_nothing_is_overwritten(tmp_path):
    with pytest.raises(secc.CompileError, match="--cpu"):
        secc.compile(MODELS / "se_residual.onnx", tmp_path / "a.bin", cpu="bogus")
    with pytest.raises(secc.CompileError, match="importing"):
        secc.compile(MODELS / "bad" / "garbage.onnx", tmp_path / "b.bin")
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    with pytest.raises(secc.CompileError, match="refusing to overwrite"):
        secc.compile(MODELS / "se_residual.onnx", keep)
    assert keep.read_text() == "mine"
    with pytest.raises(secc.CompileError, match="does not occur"):
        secc.compile(MODELS / "se_residual.onnx", tmp_path / "c.bin", fix_dim={"nonexistent": 2})
    assert not (tmp_path / "c.bin").exists()


def test_fix_dim_and_targets(tmp_path):
    probe = secc.Model(_compiled(tmp_path, "probe.bin"))
    sym = probe.inputs[0].shape[0]
    out = tmp_path / "fixed.bin"
    secc.compile(MODELS / "se_residual.onnx", out, fix_dim={sym: 2}, cpu="x86-64-v3")
    m = secc.Model(out)
    assert m.inputs[0].shape[0] == 2
    shaped = tmp_path / "shaped.bin"
    full = (3,) + tuple(probe.inputs[0].shape[1:])
    secc.compile(MODELS / "se_residual.onnx", shaped, input_shape={probe.inputs[0].name: full})
    assert secc.Model(shaped).inputs[0].shape == full
    keep = tmp_path / "keep.bin"
    secc.compile(MODELS / "se_residual.onnx", keep, input_shape={probe.inputs[0].name: (None,) + full[1:]})
    assert isinstance(secc.Model(keep).inputs[0].shape[0], str)
    with pytest.raises(secc.CompileError, match="no input named"):
        secc.compile(MODELS / "se_residual.onnx", tmp_path / "d.bin", input_shape={"nope": full})
    with pytest.raises(secc.CompileError, match="has rank"):
        secc.compile(MODELS / "se_residual.onnx", tmp_path / "d.bin", input_shape={probe.inputs[0].name: full[:3]})
    ptx = tmp_path / "cuda.bin"
    secc.compile(MODELS / "se_residual.onnx", ptx, target="cuda", arch="sm_80")
    with pytest.raises(secc.LoadError, match="CUDA"):
        secc.Model(ptx)


def _compiled(tmp_path, name):
    p = tmp_path / name
    secc.compile(MODELS / "se_residual.onnx", p)
    return p
