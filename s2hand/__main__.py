import sys

from s2hand.cli import main

sys.exit(main())
