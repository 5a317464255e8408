"""Upscaling with an SR network: the image pipeline, the networks' exact fast runtime, and the batch of files.

`pipeline` turns images of every kind into the network's input and back, in tiles (`Upscaler`); `runtime` makes
the network give the same bits in a tile as in the whole image; `batch` runs an upscaler over files and folders;
`shards` splits them across processes and records what became of each.
"""

from srkit.upscale.batch import Job, Summary, is_media, plan, upscale_file, upscale_files
from srkit.upscale.pipeline import MEMORY_BUDGET, Upscaler, from_range, sr_for_metrics, super_resolve, to_range
from srkit.upscale.shards import Manifest, Shard

__all__ = [
    "MEMORY_BUDGET",
    "Job",
    "Manifest",
    "Shard",
    "Summary",
    "Upscaler",
    "from_range",
    "is_media",
    "plan",
    "sr_for_metrics",
    "super_resolve",
    "to_range",
    "upscale_file",
    "upscale_files",
]
