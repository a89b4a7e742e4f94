import sys

from gallery_core.cli import main

sys.exit(main())
