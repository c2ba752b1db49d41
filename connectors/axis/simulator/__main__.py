"""`python -m connectors.axis.simulator --db FILE --client SYSTEMID:SECRET ...`"""

import sys

from connectors.axis.simulator.cli import main

sys.exit(main())
