import sys

from srkit.cli import main

sys.exit(main())
