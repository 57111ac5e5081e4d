import sys

from minivae.cli import main

sys.exit(main())
