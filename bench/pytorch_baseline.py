"""The PyTorch reference for `npm run bench`: the same workloads as bench/workloads.ts, on this machine.

Prints one JSON object per line: {"name", "seconds": [per repetition], "items": items per repetition, "peak_mb"}.
Uses Debian's python3-torch / python3-torchvision / python3-pil with torch.set_num_threads(2), as the notes on
this machine did. Usage: python3 bench/pytorch_baseline.py --only decode,sae --reps 5 [--data FOLDER]
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def emit(name, seconds, items):
    print(json.dumps({"name": name, "seconds": seconds, "items": items, "peak_mb": peak_mb()}), flush=True)


def bench_decode(args, torch):
    """The post's pipeline: ImageFolder + ToTensor + Resize((s, s)), DataLoader(batch_size=64, shuffle=False)."""
    import torchvision.transforms as T
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    # ImageFolder wants class folders: point it at the folder holding img_align_celeba/.
    root = args.data
    for size in (224, 64):
        dataset = ImageFolder(root=root, transform=T.Compose([T.ToTensor(), T.Resize((size, size), antialias=None)]))
        n = min(len(dataset), args.images)
        subset = torch.utils.data.Subset(dataset, range(n))
        loader = DataLoader(subset, batch_size=64, shuffle=False)

        def run():
            for images, _ in loader:
                pass

        emit(f"decode {size}", timed(run, args.reps), n)


def bench_sae(args, torch):
    """One SAE training step of the post's model (x − b_d, ReLU encoder, linear decoder, Adam) at batch 512."""
    for dictionary in (512, 4096, 16384):
        torch.manual_seed(0)
        d = 512
        we = torch.nn.Parameter(torch.randn(d, dictionary))
        wd = torch.nn.Parameter(torch.randn(dictionary, d))
        bd = torch.nn.Parameter(torch.zeros(d))
        be = torch.nn.Parameter(torch.zeros(dictionary))
        opt = torch.optim.Adam([we, wd, bd, be], lr=1e-5, weight_decay=1e-4)
        x = torch.nn.functional.normalize(torch.randn(512, d), dim=1)

        def step():
            f = torch.relu((x - bd) @ we + be)
            xh = f @ wd + bd
            loss = torch.linalg.norm(x - xh) + 0.1 * f.abs().sum()
            opt.zero_grad()
            loss.backward()
            opt.step()

        emit(f"sae step {dictionary}", timed(step, args.reps, warmup=2), 512)


def bench_resnet(args, torch):
    """ResNet18 (fc = identity): a training step of the post's loss, and eval-mode embedding."""
    import torchvision

    for batch, size in ((32, 64), (8, 224)):
        torch.manual_seed(0)
        model = torchvision.models.resnet18()
        model.fc = torch.nn.Identity()
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        images = torch.rand(batch, 3, size, size)

        def step():
            e = model(images)
            er = model(torch.rot90(images, 2, (2, 3)))
            loss = torch.nn.functional.cross_entropy(e @ e.T, torch.arange(batch)) + torch.nn.functional.mse_loss(e, -er)
            opt.zero_grad()
            loss.backward()
            opt.step()

        emit(f"resnet18 train {batch}x{size}", timed(step, args.reps), batch)
    for batch, size in ((64, 64), (64, 224)):
        model = torchvision.models.resnet18()
        model.fc = torch.nn.Identity()
        model.eval()
        images = torch.rand(batch, 3, size, size)

        def embed():
            with torch.no_grad():
                model(images)

        emit(f"resnet18 embed {batch}x{size}", timed(embed, args.reps), batch)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="decode,sae,resnet")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--data", default="")
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    import torch

    torch.set_num_threads(2)
    print(json.dumps({"name": "versions", "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    only = set(args.only.split(","))
    if "decode" in only and args.data:
        bench_decode(args, torch)
    if "sae" in only:
        bench_sae(args, torch)
    if "resnet" in only:
        bench_resnet(args, torch)


if __name__ == "__main__":
    sys.exit(main())
