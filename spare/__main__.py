import sys

from spare.cli import main

sys.exit(main())
