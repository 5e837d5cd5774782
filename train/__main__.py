"""``python -m hybrik_fast.train`` (and ``torchrun ... -m hybrik_fast.train``): see :mod:`.run`."""
import sys

from .run import train_main

if __name__ == "__main__":
    sys.exit(train_main())
