"""``python -m stream_risk.tools.simulate``: the simulator on its own."""

import sys

from stream_risk.tools.simulate import main

if __name__ == "__main__":
    sys.exit(main())
