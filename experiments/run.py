"""Train and compare models: ``python experiments/run.py --config FILE [key=value ...]``.

The same as ``tgraph run``. Example::

    python experiments/run.py --config demo seeds=[0,1,2]

Writes ``runs/<experiment>/<dataset>/<model>/seed<k>/`` and prints mean ± std over seeds.
"""

import sys

from tgraph.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
