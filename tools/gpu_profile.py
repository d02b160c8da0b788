"""Where a world's frame time goes on a GPU (torch backend): per-frame time, then the top operators of a
torch.profiler trace over 30 frames. Run on the lent GPU machine: python3 tools/gpu_profile.py WORLD."""

import sys
import time

import torch

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
from torch.profiler import ProfilerActivity, profile

with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
    for _ in range(30):
        world.step(())
print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=25, max_name_column_width=60))
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=60))
