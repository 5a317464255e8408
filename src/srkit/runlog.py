"""A run's log: log.csv, TensorBoard scalars in tb/ and curves.png, continued (not duplicated) when it resumes."""

from __future__ import annotations

import csv
from pathlib import Path

from srkit.files import atomic_path

# cpu and amp say which machine and precision trained the steps up to each logged row (runs go on across machines)
LOG_FIELDS = ["step", "elapsed_s", "lr", "loss", "steps_per_s", "val_psnr", "cpu", "amp"]


class RunLog:
    """CSV log, TensorBoard scalars and the curves plot of a run, continued (not duplicated) on resume."""

    def __init__(self, out: Path, step: int) -> None:
        from tensorboardX import SummaryWriter

        self.path = out / "log.csv"
        rows = []
        if self.path.exists():  # keep what happened up to the checkpoint; later rows will be redone
            with self.path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
        with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, LOG_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        self.file = self.path.open("a", newline="")
        self.csv = csv.DictWriter(self.file, LOG_FIELDS)
        self.tb = SummaryWriter(str(out / "tb"), purge_step=step + 1)
        self.out = out

    def write(self, row: dict) -> None:
        self.csv.writerow(row)
        self.file.flush()
        for key in ("loss", "lr", "steps_per_s", "val_psnr"):
            if row.get(key) not in (None, ""):
                self.tb.add_scalar(key, float(row[key]), row["step"])
        if row.get("val_psnr"):
            plot_curves(self.path, self.out / "curves.png")

    def close(self) -> None:
        self.file.close()
        self.tb.close()


def plot_curves(log_csv: Path, png: Path) -> None:
    """Loss and validation PSNR against step, from a run's log.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with log_csv.open() as f:
        rows = list(csv.DictReader(f))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    loss = [(int(r["step"]), float(r["loss"])) for r in rows if r.get("loss")]
    val = [(int(r["step"]), float(r["val_psnr"])) for r in rows if r.get("val_psnr")]
    if loss:
        ax1.plot(*zip(*loss, strict=True))
        ax1.set_yscale("log")
    ax1.set(xlabel="step", ylabel="training loss")
    if val:
        ax2.plot(*zip(*val, strict=True), marker=".")
    ax2.set(xlabel="step", ylabel="validation PSNR (dB)")
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
