"""hybrid.utils: PyTorch's torch.utils names; hybrid.utils.data is hybrid.data."""

from hybrid.utils import data  # noqa: F401
