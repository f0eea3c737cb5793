import sys

from wfsearch.cli import main

sys.exit(main())
