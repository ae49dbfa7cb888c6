"""`python -m serving`: run the inference server (see `python -m serving --help`)."""

import sys

from serving.server import main

sys.exit(main())
