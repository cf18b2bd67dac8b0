"""Test stand-in for `torchmetrics.utilities.data`."""
from typing import List, Union

import torch


def dim_zero_cat(values: Union[torch.Tensor, List[torch.Tensor]]) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values
    return torch.cat([value.reshape(-1, *value.shape[1:]) if value.dim() else value.reshape(1) for value in values])
