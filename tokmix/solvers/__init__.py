"""The mixture LP, its bootstrap and baselines (pure: arrays in, arrays out)."""

from tokmix.solvers.highs import mark_banner_written

mark_banner_written()  # before any solver module builds a highspy.Highs (see tokmix.solvers.highs)
