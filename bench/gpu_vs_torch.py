#!/usr/bin/env python3
"""mpscope's GPU lanes against PyTorch on the same GPU, in one run.

Trains the MLP 784-w-w-w-w-10 (w = batch) with SGD + momentum 0.9 for each width in fp32 (TF32 off), AMP fp16
(autocast + GradScaler), AMP bf16 and pure fp16 (and mpscope's fp8 alone), with mpscope (bench/gpu_step.cpp, one process per case) and with
PyTorch (this process), and prints the median step time, the peak device memory and the ratios. Both time each
step on the host between two synchronizations (a training loop that reads its loss back every step).

    python3 bench/gpu_vs_torch.py --mpscope build/bench/mpscope_gpu_step [--widths 256,1024,4096,8192] [--json out.json]
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

RECIPES = ["fp32", "fp16-amp", "bf16-amp", "fp16-pure"]


def steps_for(width):
    return {256: 200, 1024: 100, 4096: 30}.get(width, 12)


def torch_case(recipe, width, steps, warmup=10):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(1)
    dev = torch.device("cuda")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    layers = []
    widths = [784, width, width, width, width, 10]
    for i in range(5):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < 4:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers).to(dev)
    batch = width
    x = torch.randn(2 * batch, 784, device=dev)
    y = torch.randint(0, 10, (2 * batch,), device=dev)
    if recipe == "fp16-pure":
        model = model.half()
        x = x.half()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda") if recipe == "fp16-amp" else None
    dtype = {"fp16-amp": torch.float16, "bf16-amp": torch.bfloat16}.get(recipe)
    orders = [torch.randperm(2 * batch, device=dev)[:batch] for _ in range(8)]
    times = []
    for s in range(warmup + steps):
        idx = orders[s % len(orders)]
        xb, yb = x[idx], y[idx]
        torch.cuda.synchronize()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if dtype is not None:
            with torch.autocast("cuda", dtype=dtype):
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
        last = loss.item()  # reads the loss back, as mpscope's lane does every step
        torch.cuda.synchronize()
        if s >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    peak = torch.cuda.max_memory_allocated() / 2**20
    del model, opt, x, y
    torch.cuda.empty_cache()
    return {"impl": "torch", "recipe": recipe, "width": width, "median_ms": statistics.median(times),
            "p10_ms": times[len(times) // 10], "p90_ms": times[(len(times) - 1) * 9 // 10], "peak_mib": peak,
            "last_loss": last}


def mpscope_case(binary, recipe, width, steps, record="never"):
    out = subprocess.run([binary, "--recipe", recipe, "--width", str(width), "--batch", str(width), "--steps", str(steps),
                          "--record", record], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mpscope", required=True, help="path of mpscope_gpu_step")
    ap.add_argument("--widths", default="256,1024,4096,8192")
    ap.add_argument("--json", help="also write every measurement here")
    args = ap.parse_args()
    import torch

    widths = [int(w) for w in args.widths.split(",")]
    results = []
    print(f"GPU: {torch.cuda.get_device_name()}, PyTorch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    for width in widths:
        for recipe in RECIPES:
            steps = steps_for(width)
            m = mpscope_case(args.mpscope, recipe, width, steps)
            t = torch_case(recipe, width, steps)
            results += [m, t]
            print(f"  measured w={width} {recipe}: mpscope {m['median_ms']:.3f} ms, torch {t['median_ms']:.3f} ms", flush=True)
        steps = steps_for(width)
        results.append(mpscope_case(args.mpscope, "fp16-amp", width, steps, record="every"))
        results.append(mpscope_case(args.mpscope, "fp8", width, steps))  # (PyTorch has no fp8 training recipe)

    def find(impl, recipe, width, record="never"):
        for r in results:
            if r["impl"] == impl and r["recipe"] == recipe and r["width"] == width and r.get("record", "never") == record:
                return r
        return None

    print()
    print("Median step time (ms) and peak device memory (MiB), MLP 784-w-w-w-w-10, batch = w, SGD momentum")
    print(f"{'w':>5} {'recipe':10} {'mpscope':>9} {'PyTorch':>9} {'ratio':>7} {'mpscope MiB':>12} {'PyTorch MiB':>12}")
    for width in widths:
        for recipe in RECIPES:
            m, t = find("mpscope", recipe, width), find("torch", recipe, width)
            print(f"{width:5} {recipe:10} {m['median_ms']:9.3f} {t['median_ms']:9.3f} {m['median_ms'] / t['median_ms']:7.3f} "
                  f"{m['peak_mib']:12.1f} {t['peak_mib']:12.1f}")
        m = find("mpscope", "fp8", width)
        print(f"{width:5} {'fp8':10} {m['median_ms']:9.3f} {'-':>9} {'-':>7} {m['peak_mib']:12.1f} {'-':>12}")
    print("(ratio: mpscope / PyTorch step time; lower is faster; fp8: E4M3/E5M2 GEMMs with delayed scaling, no PyTorch peer)")
    print()
    print("Targets")
    for width, bound in [(256, 0.1), (4096, 0.75)]:
        if width in widths:
            r = find("mpscope", "fp16-amp", width)["median_ms"] / find("torch", "fp16-amp", width)["median_ms"]
            print(f"  fp16-amp vs PyTorch AMP at w{width}: {r:.3f}x (target <= {bound}x) {'met' if r <= bound else 'MISSED'}")
    if 4096 in widths:
        f32, f16 = find("mpscope", "fp32", 4096), find("mpscope", "fp16-amp", 4096)
        speed = f32["median_ms"] / f16["median_ms"]
        memory = f16["peak_mib"] / f32["peak_mib"]
        print(f"  mpscope fp16-amp vs fp32 at w4096: {speed:.2f}x faster (target >= 5x) {'met' if speed >= 5 else 'MISSED'}; "
              f"peak memory {memory:.2f}x (target <= 0.6x) {'met' if memory <= 0.6 else 'MISSED'}")
    for width in widths:
        plain, rec = find("mpscope", "fp16-amp", width), find("mpscope", "fp16-amp", width, "every")
        cost = rec["median_ms"] / plain["median_ms"] - 1
        print(f"  recording full statistics every step, fp16-amp w{width}: {100 * cost:+.1f}% (target <= 5%)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
