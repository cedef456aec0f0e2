"""Make `import sharptask` work for the scripts in benchmarks/.

An installed sharptask (pip install . in a venv) is used as it is. Run from
a source checkout where the extension was built in place
(`python setup.py build_ext --inplace`), the checkout's python/ directory is
put on sys.path instead.
"""

import os
import sys


def ensure_sharptask():
    try:
        import sharptask  # noqa: F401
        return
    except ImportError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(os.path.dirname(here), "python"))
    import sharptask  # noqa: F401  (raises a clear ImportError if unbuilt)
