import sys

from csv_merger.cli import main

sys.exit(main())
