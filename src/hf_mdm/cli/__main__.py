"""`python -m hf_mdm.cli ...` (what `torchrun -m` and `accelerate launch -m` need), same as the `hf-mdm` script."""

from . import entry_point


entry_point()
