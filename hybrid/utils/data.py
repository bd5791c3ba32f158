"""hybrid.utils.data: the same module as hybrid.data (torch.utils.data's spelling)."""

import sys

import hybrid.data as _data
import hybrid.data.multiprocess  # noqa: F401  (loaded now so that it is aliased too; ~5 ms)

# NOTE: an alias, not a copy: `hybrid.utils.data is hybrid.data`, and its submodules are the
# same module objects too (so isinstance checks and get_worker_info() see one set of classes).
for _name, _mod in list(sys.modules.items()):
    if _name.startswith("hybrid.data."):
        sys.modules[__name__ + _name[len("hybrid.data"):]] = _mod
sys.modules[__name__] = _data
