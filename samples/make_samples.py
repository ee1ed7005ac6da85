#!/usr/bin/env python3
"""Writes the small arrays the CLI tour (scripts/tour) uses. Deterministic; needs only the standard library.

gradients.npy  float32 (4096,): magnitudes log-uniform over 2^-34 .. 2^4 with random signs, like the weight
               gradients of a small network: fp16 loses the tiny ones, bf16 keeps them.
gemm_a.npy     float32 (64, 256) holding fp16 values; gemm_b.npy float32 (256, 48) holding fp16 values: a GEMM whose
               accumulation models (fp32, h100, exact) give visibly different results.
"""
import math, random, struct
from pathlib import Path

here = Path(__file__).resolve().parent
rng = random.Random(20261124)

def npy(path, shape, values):
    shape_text = "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % shape_text
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    data = struct.pack("<%df" % len(values), *values)
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data)

def to_fp16(x):  # nearest fp16 value (round-half-even via struct's 'e' format)
    return struct.unpack("<e", struct.pack("<e", x))[0]

grads = [rng.choice((-1, 1)) * 2.0 ** rng.uniform(-34, 4) for _ in range(4096)]
npy(here / "gradients.npy", (4096,), grads)
a = [to_fp16(rng.gauss(0, 1) * 2.0 ** rng.randint(-6, 6)) for _ in range(64 * 256)]
b = [to_fp16(rng.gauss(0, 1) * 2.0 ** rng.randint(-6, 6)) for _ in range(256 * 48)]
npy(here / "gemm_a.npy", (64, 256), a)
npy(here / "gemm_b.npy", (256, 48), b)
