"""HiGHS without its banner.

``highspy.Highs()`` prints "Running HiGHS x.y.z ... Copyright ..." to the process's stdout
while it is constructed, before any option can be set, so ``output_flag=False`` (which every
tokmix solver sets) cannot stop it. HiGHS prints it once per process: the first instance
whose options let it log marks the banner as written, for all instances. In a Ray job each
worker process that solves printed it once (the solve task, every bootstrap replicate task).

:func:`mark_banner_written` spends that once on an instance built from the bindings' own
class, with console logging off and no log file, so the banner goes nowhere. Nothing else
changes: later instances log exactly as their options say (all of tokmix's set
``output_flag=False``), and solver failures are statuses that the solvers check and raise as
:class:`tokmix.errors.SolverError`, never console text. If a highspy release moves the
private class, this does nothing and the banner is printed as before.
"""

from __future__ import annotations

import functools


@functools.cache
def mark_banner_written() -> bool:
    """Have HiGHS write its once-per-process banner to nowhere; whether it could."""
    try:
        from highspy import HighsLp
        from highspy._core import _Highs
    except ImportError:
        return False
    quiet = _Highs()  # the binding without highspy.Highs.__init__, which logs at once
    quiet.setOptionValue("log_to_console", False)  # output_flag stays on: the banner counts
    quiet.passModel(HighsLp())  # the first logging call writes (here: drops) the banner
    return True
