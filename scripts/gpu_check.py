#!/usr/bin/env python3
"""Runs secc CUDA artifacts (PTX) on a real NVIDIA GPU and compares every output with ONNX
Runtime's, for every fixture: the end-to-end check of the PTX path until the GPU runtime
exists. Standard library only (ctypes on libcuda), so it runs on a bare GPU machine.

    # here: compile every fixture for CUDA
    bash scripts/gpu_artifacts.sh            # -> gpu-check/*.bin + inputs/refs
    # on the GPU machine
    python3 scripts/gpu_check.py gpu-check [--dry]

Launch convention (docs/artifact.md): kernel parameters are the buffers in `args` order, then
one i64 per symbol; kernels with a `grid` hint get one CTA per grid unit and
`(C + R) * 4` bytes of dynamic shared memory (SE blocks); all others are grid-stride.
"""
import array, ctypes, json, os, struct, sys, zlib

THREADS = 128
BLOCKS = 120


def read_npy(path):
    b = open(path, "rb").read()
    assert b[:6] == b"\x93NUMPY", path
    hlen, start = (struct.unpack("<H", b[8:10])[0], 10) if b[6] == 1 else (struct.unpack("<I", b[8:12])[0], 12)
    h = b[start:start + hlen].decode()
    assert "'<f4'" in h and "'fortran_order': False" in h, h
    s = h[h.index("'shape': (") + 10:]
    shape = [int(t) for t in s[:s.index(")")].split(",") if t.strip()]
    data = array.array("f")
    data.frombytes(b[start + hlen:])
    return shape, data


def load_artifact(path):
    b = open(path, "rb").read()
    assert b[:8] == b"SECCART\0", "not an artifact"
    ver, mlen, mcrc, _ = struct.unpack("<IIII", b[8:24])
    man = b[24:24 + mlen]
    assert zlib.crc32(man) == mcrc, "manifest CRC"
    m = json.loads(man)
    sections = {}
    for s in m["sections"]:
        data = b[s["offset"]:s["offset"] + s["len"]]
        assert zlib.crc32(data) == s["crc32"], f"section {s['kind']} CRC"
        sections[s["kind"]] = data
    return m, sections


def dim(d, syms):
    return d if isinstance(d, int) else syms[d["sym"]] * d["coeff"]


class Cuda:
    def __init__(self):
        self.lib = ctypes.CDLL("libcuda.so.1")
        self.ok(self.lib.cuInit(0))
        dev = ctypes.c_int()
        self.ok(self.lib.cuDeviceGet(ctypes.byref(dev), 0))
        name = ctypes.create_string_buffer(100)
        self.lib.cuDeviceGetName(name, 100, dev)
        print("device:", name.value.decode())
        self.ctx = ctypes.c_void_p()
        self.ok(self.lib.cuCtxCreate_v2(ctypes.byref(self.ctx), 0, dev))

    def ok(self, r, what=""):
        if r != 0:
            s = ctypes.c_char_p()
            self.lib.cuGetErrorString(r, ctypes.byref(s))
            raise RuntimeError(f"CUDA error {r} {s.value.decode() if s.value else ''} {what}")

    def module(self, ptx):
        mod = ctypes.c_void_p()
        self.ok(self.lib.cuModuleLoadData(ctypes.byref(mod), ptx + b"\0"), "loading PTX")
        return mod

    def alloc(self, nbytes):
        p = ctypes.c_uint64()
        self.ok(self.lib.cuMemAlloc_v2(ctypes.byref(p), max(nbytes, 4)))
        self.ok(self.lib.cuMemsetD8_v2(p, 0, max(nbytes, 4)))
        return p.value

    def upload(self, dptr, data: bytes):
        self.ok(self.lib.cuMemcpyHtoD_v2(ctypes.c_uint64(dptr), data, len(data)))

    def download(self, dptr, nbytes):
        buf = ctypes.create_string_buffer(nbytes)
        self.ok(self.lib.cuMemcpyDtoH_v2(buf, ctypes.c_uint64(dptr), nbytes))
        return buf.raw

    def launch(self, mod, name, params, grid, shmem):
        f = ctypes.c_void_p()
        self.ok(self.lib.cuModuleGetFunction(ctypes.byref(f), mod, name.encode()), name)
        if shmem > 48 * 1024:
            self.ok(self.lib.cuFuncSetAttribute(f, 8, shmem), "shared memory size")  # MAX_DYNAMIC_SHARED_SIZE_BYTES
        vals = [ctypes.c_uint64(p) if kind == "p" else ctypes.c_int64(p) for kind, p in params]
        ptrs = (ctypes.c_void_p * len(vals))(*[ctypes.cast(ctypes.byref(v), ctypes.c_void_p) for v in vals])
        self.ok(self.lib.cuLaunchKernel(f, grid, 1, 1, THREADS, 1, 1, shmem, None, ptrs, None), name)
        self.ok(self.lib.cuCtxSynchronize(), name)


def run(cuda, art, inputs):
    m, sec = load_artifact(art)
    assert m["targets"][0]["kind"] == "cuda", "not a CUDA artifact"
    bufs = m["buffers"]
    # bind symbols from the input shapes
    syms = [None] * len(m["symbols"])
    for io, (shape, _) in zip(m["inputs"], inputs):
        for d, v in zip(bufs[io["buffer"]]["shape"], shape):
            if not isinstance(d, int):
                syms[d["sym"]] = v // d["coeff"]
    syms = [s if s is not None else 1 for s in syms]
    size = lambda b: 4 * eval_numel(b["shape"], syms)
    ptr = {}
    for i, b in enumerate(bufs):
        if b["kind"] != "alias":
            ptr[i] = cuda.alloc(size(b)) if cuda else i
    for i, b in enumerate(bufs):
        if b["kind"] == "alias":
            ptr[i] = ptr[b["of"]]
        elif b["kind"] == "weight" and cuda:
            cuda.upload(ptr[i], sec["weights"][b["offset"]:b["offset"] + size(b)])
    for io, (_, data) in zip(m["inputs"], inputs):
        if cuda:
            cuda.upload(ptr[io["buffer"]], data.tobytes())
    mod = cuda.module(sec["ptx"]) if cuda else None
    for k in m["kernels"]:
        params = [("p", ptr[a]) for a in k["args"]] + [("i", s) for s in syms]
        grid, shmem = BLOCKS, 0
        if k.get("grid") is not None:
            grid = dim(k["grid"], syms)
            c = dim(bufs[k["args"][0]]["shape"][1], syms)
            r = dim(bufs[k["args"][1]]["shape"][0], syms)
            shmem = (c + r) * 4
        if cuda:
            cuda.launch(mod, k["name"], params, grid, shmem)
        else:
            print(f"  {k['name']}: grid {grid} x {THREADS}, shared {shmem} B, {len(params)} params")
    outs = []
    for io in m["outputs"]:
        b = bufs[io["buffer"]]
        shape = [dim(d, syms) for d in b["shape"]]
        data = array.array("f")
        if cuda:
            data.frombytes(cuda.download(ptr[io["buffer"]], size(b)))
        outs.append((shape, data))
    return outs


def eval_numel(shape, syms):
    n = 1
    for d in shape:
        n *= dim(d, syms)
    return n


def main():
    root = sys.argv[1]
    dry = "--dry" in sys.argv
    cuda = None if dry else Cuda()
    bad = 0
    names = sorted(f[:-4] for f in os.listdir(root) if f.endswith(".bin"))
    for name in names:
        base = os.path.join(root, name)
        inputs, i = [], 0
        while os.path.exists(f"{base}.in{i}.npy"):
            inputs.append(read_npy(f"{base}.in{i}.npy"))
            i += 1
        try:
            outs = run(cuda, base + ".bin", inputs)
        except Exception as e:  # report and go on
            print(f"FAIL {name}: {e}")
            bad += 1
            continue
        if dry:
            continue
        worst = 0.0
        for k, (shape, got) in enumerate(outs):
            wshape, want = read_npy(f"{base}.ort{k}.npy")
            if shape != wshape:
                print(f"FAIL {name} output {k}: shape {shape} vs {wshape}")
                bad += 1
                break
            for a, b in zip(got, want):
                e = abs(a - b) / (1 + abs(b)) if a == a and b == b else (0.0 if a != a and b != b else 1e9)
                worst = max(worst, e)
        status = "ok  " if worst <= 1e-3 else "FAIL"
        if worst > 1e-3:
            bad += 1
        print(f"{status} {name}: {len(outs)} output(s), max |a-b|/(1+|b|) = {worst:.2e}")
    print(f"{len(names) - bad} of {len(names)} artifacts match ONNX Runtime (tolerance 1e-3)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
