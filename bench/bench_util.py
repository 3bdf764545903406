"""bench_util.py — what the PyTorch peers share (bench/lora_step_torch.py,
bench/real_shape_torch.py): the process's resident set and the timed training-step loop
(forward with loss, backward, optimizer step, gradients dropped), printing one line a step.
Imported after torch's thread settings are in the environment; it imports nothing of torch."""
import os
import resource
import sys
import time


def rss_mb(peak=True):
    """the peak (peak=True) or current resident set of this process, MB"""
    if peak:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed_steps(loss_fn, opt, warmup, steps, line):
    """warmup + steps training steps of loss_fn() -> loss, then backward, opt.step() and
    opt.zero_grad(set_to_none=True). line(s, tag, t, loss) returns the step's printed line,
    t = (total, forward, backward, optimizer, CPU of all threads) in seconds, tag " (warm-up)"
    or "". Returns the
    timed steps' wall ms and CPU ms (all threads) and every step's loss."""
    times, cpus, losses = [], [], []
    for s in range(warmup + steps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        loss = loss_fn()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        cpu_ms = (time.process_time() - c0) * 1e3
        losses.append(loss.item())
        print(line(s, " (warm-up)" if s < warmup else "",
                   (t3 - t0, t1 - t0, t2 - t1, t3 - t2, cpu_ms / 1e3), losses[-1]))
        sys.stdout.flush()
        if s >= warmup:
            times.append((t3 - t0) * 1e3)
            cpus.append(cpu_ms)
    return times, cpus, losses
