"""hybrid.utils.data: the same module as hybrid.data (torch.utils.data's spelling)."""

import sys

import hybrid.data as _data
from hybrid.data import collate, dataset, loader, multiprocess, sampler, worker

# NOTE: an alias, not a copy: `hybrid.utils.data is hybrid.data`, and its submodules are the
# same module objects too (so isinstance checks and get_worker_info() see one set of classes).
for _sub in (collate, dataset, loader, multiprocess, sampler, worker):
    sys.modules[f"{__name__}.{_sub.__name__.rsplit('.', 1)[1]}"] = _sub
sys.modules[__name__] = _data
