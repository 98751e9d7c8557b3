"""``python -m tokmix VERB ...`` is the ``tokmix`` command; ``python -m tokmix run SPEC.yaml`` is
the Ray job entry point (``ray job submit --working-dir . -- python -m tokmix run SPEC.yaml``)."""

import sys

from tokmix.cli import main

sys.exit(main())
