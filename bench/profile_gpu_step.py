#!/usr/bin/env python3
"""Where a GPU lane's step spends its time: runs mpscope_gpu_step under Nsight Compute (ncu) and prints the
kernels of the last step with their durations (ncu serializes kernels: the sum exceeds the real step time, the
shares are what matter).

    python3 bench/profile_gpu_step.py --mpscope build/bench/mpscope_gpu_step --recipe fp16-amp --width 4096
    python3 bench/profile_gpu_step.py --mpscope build/bench/mpscope_gpu_step --model wide-cnn --batch 256
"""
import argparse
import csv
import io
import subprocess


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mpscope", required=True)
    ap.add_argument("--recipe", default="fp16-amp")
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--model", default="mlp", choices=["mlp", "cnn", "wide-cnn"])
    ap.add_argument("--batch", type=int, help="default: the width")
    ap.add_argument("--record", default="never")
    ap.add_argument("--ncu", default="ncu")
    args = ap.parse_args()
    batch = args.batch or args.width
    step = [args.mpscope, "--model", args.model, "--recipe", args.recipe, "--width", str(args.width), "--batch", str(batch), "--warmup", "2",
            "--steps", "1", "--record", args.record]
    out = subprocess.run([args.ncu, "--graph-profiling", "node", "--metrics", "gpu__time_duration.sum", "--csv"] + step,
                         capture_output=True, text=True)
    text = out.stdout[out.stdout.find('"ID"'):]
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r.get("Metric Name") == "gpu__time_duration.sum"]
    if not rows:
        print(out.stdout[-3000:], out.stderr[-3000:])
        return 1
    # the last step: the kernels after the last begin_step_kernel
    starts = [i for i, r in enumerate(rows) if "begin_step_kernel" in r["Kernel Name"]]
    last = rows[starts[-1]:] if starts else rows
    scale = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}[last[0]["Metric Unit"]]
    total = sum(float(r["Metric Value"].replace(",", "")) for r in last) * scale
    print(f"{args.model} {args.recipe} w{args.width} b{batch}: {len(last)} kernels, {total / 1e3:.3f} ms in total (serialized by ncu)")
    for r in last:
        v = float(r["Metric Value"].replace(",", "")) * scale
        print(f"{v:9.1f} us {100 * v / total:5.1f}%  {r['Kernel Name'][:100]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
