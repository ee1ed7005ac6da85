#!/usr/bin/env python3
"""mpscope's GPU lanes on convolutional networks against PyTorch on the same GPU, in one run.

Models (as bench/gpu_step.cpp builds them): "cnn", samples/torch_cnn.json's network on 1x8x8 inputs
(Conv(8)-ReLU-MaxPool-Conv(16)-ReLU-MaxPool-Linear(10)), and "wide-cnn" on 3x32x32 inputs with channels 32-64-128.
SGD + momentum 0.9, random data (two batches' worth, a shuffled batch each step). Recipes fp32 (TF32 off), AMP fp16
(autocast + GradScaler), AMP bf16, pure fp16. mpscope (fast mode: cuBLASLt, one process per case; every step
replays a CUDA graph) against PyTorch eager (cuDNN's convolutions) and PyTorch with the whole step captured in a
CUDA graph (torch.cuda.graph; fp16-amp there runs autocast without GradScaler, whose inf check syncs the host).
All time each step on the host between two synchronizations, reading the loss back (a training loop that logs it).

    python3 bench/cnn_vs_torch.py --mpscope build/bench/mpscope_gpu_step [--cases cnn:64,cnn:1024,wide-cnn:128]
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

RECIPES = ["fp32", "fp16-amp", "bf16-amp", "fp16-pure"]
SHAPES = {"cnn": ((1, 8, 8), (8, 16)), "wide-cnn": ((3, 32, 32), (32, 64, 128))}


def torch_model(name):
    import torch.nn as nn

    (c, h, w), channels = SHAPES[name]
    layers, previous = [], c
    for ch in channels:
        layers += [nn.Conv2d(previous, ch, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        previous, h, w = ch, h // 2, w // 2
    layers += [nn.Flatten(), nn.Linear(previous * h * w, 10)]
    return nn.Sequential(*layers)


def torch_case(name, recipe, batch, steps, graph, warmup=10):
    import torch
    import torch.nn.functional as F

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(1)
    dev = torch.device("cuda")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = torch_model(name).to(dev)
    shape = SHAPES[name][0]
    x = torch.randn(2 * batch, *shape, device=dev)
    y = torch.randint(0, 10, (2 * batch,), device=dev)
    if recipe == "fp16-pure":
        model = model.half()
        x = x.half()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    dtype = {"fp16-amp": torch.float16, "bf16-amp": torch.bfloat16}.get(recipe)
    scaler = torch.amp.GradScaler("cuda") if recipe == "fp16-amp" and not graph else None
    orders = [torch.randperm(2 * batch, device=dev)[:batch] for _ in range(8)]
    idx = orders[0].clone()

    def step():
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=not graph)
        if dtype is not None:
            with torch.autocast("cuda", dtype=dtype, cache_enabled=not graph):
                loss = F.cross_entropy(model(xb), yb)
        else:
            loss = F.cross_entropy(model(xb), yb)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        return loss

    if graph:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            static_loss = step()
    times = []
    for s in range(warmup + steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        idx.copy_(orders[s % len(orders)])
        if graph:
            g.replay()
            last = static_loss.item()
        else:
            last = step().item()
        torch.cuda.synchronize()
        if s >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    peak = torch.cuda.max_memory_allocated() / 2**20
    return {"impl": "torch-graph" if graph else "torch", "model": name, "recipe": recipe, "batch": batch,
            "median_ms": statistics.median(times), "p10_ms": times[len(times) // 10],
            "p90_ms": times[(len(times) - 1) * 9 // 10], "peak_mib": peak, "last_loss": last}


def mpscope_case(binary, name, recipe, batch, steps):
    out = subprocess.run([binary, "--model", name, "--recipe", recipe, "--batch", str(batch), "--steps", str(steps)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mpscope", required=True, help="path of mpscope_gpu_step")
    ap.add_argument("--cases", default="cnn:64,cnn:1024,wide-cnn:64,wide-cnn:256", help="model:batch,...")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--json", help="also write every measurement here")
    args = ap.parse_args()
    import torch

    print(f"GPU: {torch.cuda.get_device_name()}, PyTorch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    rows = []
    for case in args.cases.split(","):
        name, batch = case.split(":")
        batch = int(batch)
        for recipe in RECIPES:
            m = mpscope_case(args.mpscope, name, recipe, batch, args.steps)
            e = torch_case(name, recipe, batch, args.steps, graph=False)
            g = torch_case(name, recipe, batch, args.steps, graph=True)
            rows.append((name, batch, recipe, m, e, g))
            print(f"  measured {name} b{batch} {recipe}: mpscope {m['median_ms']:.3f} ms, torch eager {e['median_ms']:.3f} ms,"
                  f" torch graph {g['median_ms']:.3f} ms", flush=True)
    print()
    print("Median step time (ms), SGD momentum; ratio = mpscope / PyTorch (lower is faster)")
    print(f"{'model':9} {'batch':>5} {'recipe':10} {'mpscope':>8} {'eager':>8} {'graph':>8} {'/eager':>7} {'/graph':>7}")
    for name, batch, recipe, m, e, g in rows:
        print(f"{name:9} {batch:5} {recipe:10} {m['median_ms']:8.3f} {e['median_ms']:8.3f} {g['median_ms']:8.3f} "
              f"{m['median_ms'] / e['median_ms']:7.2f} {m['median_ms'] / g['median_ms']:7.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([r for row in rows for r in row[3:]], f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
