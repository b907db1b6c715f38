"""Train notebook 11's reward fine-tuning models (section 2) and write them to fmlib/resources/.

For each training seed S (default 0 1 2), with one thread and a fixed number of steps:

- reward_base_seedS.pt: the base flow, CFM on `reward_tuning.base_mixture()` (3000 steps,
  `reward_tuning.train_base`, about 10 s of CPU);
- reward_tuned_seedS.pt: its reward-weighted CFM fine-tuning (`online_round` from the base: a
  pool of 20 000 base samples, weights softmax(r / lambda), 400 steps);
- reward_online2_seedS.pt: the broken "online" variant, one more round from the tuned model
  (its pool drawn from the tuned model, weighted again): target p_base e^{2 r / lambda}.

    .venv/bin/python benchmarks/train_reward.py --seeds 0 1 2

Each file holds {"state_dict" (float32), "seed", "steps"}; load with `reward_tuning.load`.
The notebook fine-tunes seed 0 live as well (the loop's lines) and compares the three seeds'
shipped models.
"""

from __future__ import annotations

import argparse
import time

import torch

from fmlib import repro, resources
from fmlib import reward_tuning as rt


def save(model: torch.nn.Module, kind: str, seed: int, steps: int) -> None:
    state = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
    out = resources.DIRECTORY / rt.checkpoint_name(kind, seed)
    torch.save({"state_dict": state, "seed": seed, "steps": steps}, out)
    print(f"wrote {out} ({out.stat().st_size / 1e3:.0f} kB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(rt.SEEDS))
    args = parser.parse_args()
    for seed in args.seeds:
        start = time.process_time()
        repro.seed_everything(seed, threads=1)
        base = rt.train_base(seed)
        save(base, "base", seed, rt.BASE_STEPS)
        generator = torch.Generator().manual_seed(1000 + seed)
        tuned = rt.online_round(base, generator=generator)
        save(tuned, "tuned", seed, rt.FINETUNE_STEPS)
        save(rt.online_round(tuned, generator=generator), "online2", seed, rt.FINETUNE_STEPS)
        print(f"seed {seed}: {time.process_time() - start:.0f} s of CPU")


if __name__ == "__main__":
    main()
