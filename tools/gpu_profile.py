"""Where a world's frame time goes on a GPU (torch backend): per-frame time, then the top operators of a
torch.profiler trace over 30 frames. Run on the lent GPU machine: python3 tools/gpu_profile.py WORLD.

2026-11-28, H200, the shipped maze (small): 17.96 ms per frame, of which 2.2 ms is GPU work; 1,100 kernel
launches per frame (cudaLaunchKernel alone 6 ms of CPU): play on a GPU is bound by launches, not the GPU
(the lever: CUDA graphs or torch.compile of the stepper, and fusing the many small elementwise ops)."""

import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

from engine.world.session import World

world = World.load(sys.argv[1], backend="torch", device="cuda")
world.reset(None, seed=0)
for _ in range(20):
    world.step(())
torch.cuda.synchronize()
t = time.perf_counter()
for _ in range(100):
    world.step(())
torch.cuda.synchronize()
print(f"{(time.perf_counter() - t) * 10:.2f} ms per frame")
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    for _ in range(30):
        world.step(())
print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=25, max_name_column_width=60))
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=60))
