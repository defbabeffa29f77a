"""The PyTorch reference for `npm run bench`: the same workloads as bench/workloads.ts, on this machine.

Prints one JSON object: {"name", "seconds": [per repetition], "items": items per repetition, "peak_mb", "torch", "threads"}.
Uses Debian's python3-torch / python3-torchvision / python3-pil with torch.set_num_threads(2), as the notes on
this machine did. Usage: python3 bench/pytorch_baseline.py --workload "sae step 512" --reps 5 [--data FOLDER];
one workload per process, so that peak_mb (the process's maximum RSS) is that workload's alone.
"""

import argparse
import json
import os
import resource
import sys
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


def decode(args, torch, size):
    """The post's pipeline: ImageFolder + ToTensor + Resize((s, s)), DataLoader(batch_size=64, shuffle=False)."""
    import torchvision.transforms as T
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    # ImageFolder wants class folders: point it at the folder holding img_align_celeba/.
    dataset = ImageFolder(root=args.data, transform=T.Compose([T.ToTensor(), T.Resize((size, size), antialias=None)]))
    n = min(len(dataset), args.images)
    loader = DataLoader(torch.utils.data.Subset(dataset, range(n)), batch_size=64, shuffle=False)

    def run():
        for images, _ in loader:
            pass

    return timed(run, args.reps), n


def sae_step(args, torch, dictionary):
    """One SAE training step of the post's model (x − b_d, ReLU encoder, linear decoder, Adam) at batch 512."""
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

    return timed(step, args.reps, warmup=2), 512


def resnet18(torch):
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    model.fc = torch.nn.Identity()
    return model


def resnet_train(args, torch, batch, size):
    """A training step of the post's loss (the batch and its 180° rotation, Adam) on ResNet18 with fc = identity."""
    model = resnet18(torch)
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

    return timed(step, args.reps), batch


def resnet_embed(args, torch, batch, size):
    """Eval-mode embedding of a batch."""
    model = resnet18(torch)
    model.eval()
    images = torch.rand(batch, 3, size, size)

    def embed():
        with torch.no_grad():
            model(images)

    return timed(embed, args.reps), batch


WORKLOADS = {
    "decode 224": lambda a, t: decode(a, t, 224),
    "decode 64": lambda a, t: decode(a, t, 64),
    "resnet18 train 32x64": lambda a, t: resnet_train(a, t, 32, 64),
    "resnet18 train 8x224": lambda a, t: resnet_train(a, t, 8, 224),
    "resnet18 embed 64x64": lambda a, t: resnet_embed(a, t, 64, 64),
    "resnet18 embed 64x224": lambda a, t: resnet_embed(a, t, 64, 224),
    "sae step 512": lambda a, t: sae_step(a, t, 512),
    "sae step 4096": lambda a, t: sae_step(a, t, 4096),
    "sae step 16384": lambda a, t: sae_step(a, t, 16384),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", required=True, help="one of: " + ", ".join(WORKLOADS))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--data", default="")
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()
    if args.workload not in WORKLOADS:
        parser.error(f"unknown workload {args.workload!r}")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    import torch

    torch.set_num_threads(2)
    seconds, items = WORKLOADS[args.workload](args, torch)
    config = torch.__config__.show()
    blas = next((line.split("=", 1)[1].strip() for line in config.splitlines() if "BLAS_INFO=" in line), "not reported")
    parallel = next((line.strip() for line in torch.__config__.parallel_info().splitlines() if line.startswith("ATen parallel backend")), "")
    print(json.dumps({"name": args.workload, "seconds": seconds, "items": items, "peak_mb": peak_mb(), "torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas, "parallel": parallel}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
